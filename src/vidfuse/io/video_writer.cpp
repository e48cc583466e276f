#include "vidfuse/io/video_writer.h"

extern "C" {
#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libavutil/display.h>
#include <libavutil/imgutils.h>
#include <libavutil/opt.h>
#include <libswscale/swscale.h>
}

#include <cmath>
#include <cstdio>
#include <map>
#include <string>

#include "vidfuse/core/atomic_file.h"
#include "vidfuse/core/error.h"
#include "vidfuse/io/ffmpeg_util.h"

namespace vidfuse::io {

namespace {

// Short names users type, mapped to the encoder Debian's FFmpeg ships for them.
const AVCodec* find_encoder(const std::string& name) {
  static const std::map<std::string, std::string> aliases = {
      {"h264", "libx264"}, {"avc", "libx264"},    {"h265", "libx265"},
      {"hevc", "libx265"}, {"vp9", "libvpx-vp9"}, {"vp8", "libvpx"}};
  auto it = aliases.find(name);
  const AVCodec* codec =
      avcodec_find_encoder_by_name(it != aliases.end() ? it->second.c_str() : name.c_str());
  if (!codec) {
    if (const AVCodecDescriptor* d = avcodec_descriptor_get_by_name(name.c_str()))
      codec = avcodec_find_encoder(d->id);
  }
  return codec;
}

}  // namespace

struct VideoWriter::Impl {
  std::string path, tmp;
  VideoWriterOptions opt;
  int64_t width = 0, height = 0;
  AVFormatContext* fmt = nullptr;
  AVCodecContext* enc = nullptr;
  AVStream* stream = nullptr;
  SwsContext* sws = nullptr;
  AVFrame* frame = nullptr;
  AVPacket* packet = nullptr;
  int64_t count = 0;
  int64_t last_pts = INT64_MIN;
  int64_t ticks_per_frame = 1;
  bool header_written = false;
  bool closed = false;

  [[noreturn]] void fail(const std::string& what) const { fail_file(path, what); }

  void check(int ret, const char* what) const {
    if (ret < 0) fail(std::string(what) + ": " + av_error_text(ret));
  }

  void release() {
    sws_freeContext(sws);
    sws = nullptr;
    av_frame_free(&frame);
    av_packet_free(&packet);
    avcodec_free_context(&enc);
    if (fmt) {
      if (fmt->pb) avio_closep(&fmt->pb);
      avformat_free_context(fmt);
      fmt = nullptr;
    }
  }

  void drain_packets() {
    while (true) {
      int ret = avcodec_receive_packet(enc, packet);
      if (ret == AVERROR(EAGAIN) || ret == AVERROR_EOF) return;
      check(ret, "encoding failed");
      packet->stream_index = stream->index;
      av_packet_rescale_ts(packet, enc->time_base, stream->time_base);
      check(av_interleaved_write_frame(fmt, packet), "writing a packet failed");
    }
  }
};

VideoWriter::VideoWriter(const std::string& path, int64_t width, int64_t height,
                         VideoWriterOptions options)
    : impl_(std::make_unique<Impl>()) {
  configure_ffmpeg_logging();
  Impl& m = *impl_;
  m.path = path;
  m.opt = std::move(options);
  m.width = width;
  m.height = height;
  if (width <= 0 || height <= 0) m.fail("frame size must be positive");
  if (!(m.opt.fps > 0)) m.fail("fps must be positive");
  if (m.opt.rotation % 90 != 0) m.fail("rotation must be a multiple of 90 degrees");

  try {
    m.tmp = temp_path_for(path);  // reserved (created empty) here: removed below on failure
    const AVOutputFormat* ofmt = av_guess_format(nullptr, path.c_str(), nullptr);
    if (!ofmt) m.fail("no container format known for this file extension");
    m.check(avformat_alloc_output_context2(&m.fmt, ofmt, nullptr, m.tmp.c_str()),
            "cannot create the container");
    const AVCodec* codec = find_encoder(m.opt.codec);
    if (!codec) m.fail("no encoder for codec '" + m.opt.codec + "' in this FFmpeg build");
    const std::string cname = codec->name;
    const std::string container = ofmt->name;
    const bool mov = container.find("mp4") != std::string::npos || container == "mov";
    if (m.opt.rotation % 360 != 0 && !mov)
      m.fail("rotation metadata can only be stored in MP4/MOV (container " + container + ")");

    m.enc = avcodec_alloc_context3(codec);
    m.enc->width = static_cast<int>(width);
    m.enc->height = static_cast<int>(height);
    std::string pix = m.opt.pixel_format;
    if (pix.empty()) pix = cname == "mjpeg" ? "yuvj420p" : "yuv420p";
    m.enc->pix_fmt = av_get_pix_fmt(pix.c_str());
    if (m.enc->pix_fmt == AV_PIX_FMT_NONE) m.fail("unknown pixel format " + pix);

    // A 1/(1000·fps) time base lets variable-rate timestamps land within 1/1000 of a frame; MPEG-4
    // part 2 caps the denominator at 65535 and AVI is constant-rate anyway, so those get 1/fps.
    const AVRational rate = av_d2q(m.opt.fps, 100000);
    const bool coarse = cname == "mpeg4" || container == "avi";
    m.ticks_per_frame = coarse ? 1 : 1000;
    m.enc->time_base = AVRational{rate.den, rate.num * static_cast<int>(m.ticks_per_frame)};
    m.enc->framerate = rate;
    m.enc->gop_size = m.opt.gop;
    if (m.opt.max_b_frames >= 0) m.enc->max_b_frames = m.opt.max_b_frames;
    m.enc->thread_count = m.opt.threads;
    if (m.fmt->oformat->flags & AVFMT_GLOBALHEADER) m.enc->flags |= AV_CODEC_FLAG_GLOBAL_HEADER;
    if (cname == "mjpeg") m.enc->color_range = AVCOL_RANGE_JPEG;

    AVDictionary* copts = nullptr;
    const bool x26x = cname == "libx264" || cname == "libx265";
    const bool vpx = cname == "libvpx" || cname == "libvpx-vp9";
    if (x26x) {
      av_dict_set(&copts, "preset", "veryfast", 0);
      av_dict_set_int(&copts, "crf", m.opt.quality >= 0 ? m.opt.quality : 18, 0);
      if (cname == "libx265") av_dict_set(&copts, "x265-params", "log-level=error", 0);
    } else if (vpx) {
      av_dict_set(&copts, "deadline", "realtime", 0);
      av_dict_set(&copts, "cpu-used", "8", 0);
      av_dict_set_int(&copts, "crf", m.opt.quality >= 0 ? m.opt.quality : 20, 0);
      // VP9 crf is constant quality only with no bitrate cap; VP8 needs a cap (constrained
      // quality).
      m.enc->bit_rate = cname == "libvpx" ? 8'000'000 : 0;
      m.enc->qmin = 0;
      m.enc->qmax = 63;
    } else if (cname == "mpeg4" || cname == "mjpeg" || cname == "libxvid") {
      m.enc->flags |= AV_CODEC_FLAG_QSCALE;
      m.enc->global_quality = FF_QP2LAMBDA * (m.opt.quality >= 0 ? m.opt.quality : 2);
    }
    for (const auto& [k, v] : m.opt.codec_options) av_dict_set(&copts, k.c_str(), v.c_str(), 0);
    int ret = avcodec_open2(m.enc, codec, &copts);
    std::string unused;
    for (const AVDictionaryEntry* e = nullptr;
         (e = av_dict_get(copts, "", e, AV_DICT_IGNORE_SUFFIX));)
      unused += std::string(unused.empty() ? "" : ", ") + e->key;
    av_dict_free(&copts);
    m.check(ret, ("cannot open encoder " + cname).c_str());
    if (!unused.empty()) m.fail("encoder " + cname + " does not know option(s) " + unused);

    m.stream = avformat_new_stream(m.fmt, nullptr);
    if (!m.stream) m.fail("cannot add a video stream");
    m.check(avcodec_parameters_from_context(m.stream->codecpar, m.enc), "codec parameters");
    m.stream->time_base = m.enc->time_base;
    m.stream->avg_frame_rate = rate;
    const int rotation = ((m.opt.rotation % 360) + 360) % 360;
    if (rotation != 0) {
      auto* matrix = reinterpret_cast<int32_t*>(
          av_stream_new_side_data(m.stream, AV_PKT_DATA_DISPLAYMATRIX, sizeof(int32_t) * 9));
      if (!matrix) m.fail("out of memory");
      // av_display_rotation_get() of this matrix is -rotation, which the ffmpeg CLI (and the
      // reader) turn into a clockwise turn of `rotation` degrees.
      av_display_rotation_set(matrix, static_cast<double>(rotation));
    }

    m.check(avio_open(&m.fmt->pb, m.tmp.c_str(), AVIO_FLAG_WRITE), "cannot open for writing");
    AVDictionary* mopts = nullptr;
    if (m.opt.faststart && mov) av_dict_set(&mopts, "movflags", "+faststart", 0);
    ret = avformat_write_header(m.fmt, &mopts);
    av_dict_free(&mopts);
    m.check(ret, "cannot write the container header");
    m.header_written = true;

    m.frame = av_frame_alloc();
    m.packet = av_packet_alloc();
    if (!m.frame || !m.packet) m.fail("out of memory");
    m.frame->format = m.enc->pix_fmt;
    m.frame->width = m.enc->width;
    m.frame->height = m.enc->height;
    m.frame->color_range = m.enc->color_range;
    m.check(av_frame_get_buffer(m.frame, 0), "cannot allocate a frame");
    m.sws =
        sws_getContext(m.enc->width, m.enc->height, AV_PIX_FMT_RGB24, m.enc->width, m.enc->height,
                       m.enc->pix_fmt, SWS_BICUBIC | SWS_ACCURATE_RND, nullptr, nullptr, nullptr);
    if (!m.sws) m.fail("no RGB -> " + pix + " conversion");
  } catch (...) {
    m.release();
    std::remove(m.tmp.c_str());
    throw;
  }
}

VideoWriter::~VideoWriter() {
  if (!impl_->closed) {
    impl_->release();
    std::remove(impl_->tmp.c_str());
  }
}

int64_t VideoWriter::frames_written() const { return impl_->count; }

void VideoWriter::write(const torch::Tensor& frame_hw3, std::optional<double> pts_seconds) {
  Impl& m = *impl_;
  if (m.closed) m.fail("write() after close()");
  if (frame_hw3.dim() != 3 || frame_hw3.size(0) != m.height || frame_hw3.size(1) != m.width ||
      frame_hw3.size(2) != 3 || frame_hw3.scalar_type() != torch::kUInt8)
    m.fail("frame must be uint8 [" + std::to_string(m.height) + "," + std::to_string(m.width) +
           ",3], got " + std::string(frame_hw3.toString()) + " " + c10::str(frame_hw3.sizes()));
  const torch::Tensor rgb = frame_hw3.to(torch::kCPU).contiguous();
  m.check(av_frame_make_writable(m.frame), "frame buffer");
  const uint8_t* src[1] = {rgb.data_ptr<uint8_t>()};
  const int src_stride[1] = {static_cast<int>(m.width * 3)};
  sws_scale(m.sws, src, src_stride, 0, static_cast<int>(m.height), m.frame->data,
            m.frame->linesize);

  int64_t pts = m.count * m.ticks_per_frame;
  if (pts_seconds) pts = std::llround(*pts_seconds / av_q2d(m.enc->time_base));
  if (pts <= m.last_pts)
    m.fail("frame " + std::to_string(m.count) + ": timestamps must increase (at this time base: " +
           std::to_string(pts) + " <= " + std::to_string(m.last_pts) + ")");
  m.last_pts = pts;
  m.frame->pts = pts;
  m.check(avcodec_send_frame(m.enc, m.frame), "encoding failed");
  m.drain_packets();
  ++m.count;
}

void VideoWriter::close() {
  Impl& m = *impl_;
  if (m.closed) return;
  try {
    if (m.count == 0) m.fail("no frames were written");
    m.check(avcodec_send_frame(m.enc, nullptr), "flushing the encoder");
    m.drain_packets();
    m.check(av_write_trailer(m.fmt), "cannot finish the container");
    m.check(avio_closep(&m.fmt->pb), "closing the file failed");
    m.release();
    publish_temp_file(m.tmp, m.path);  // fsync, rename, fsync the folder
    m.closed = true;
  } catch (...) {
    m.release();
    std::remove(m.tmp.c_str());
    m.closed = true;
    throw;
  }
}

void write_video(const std::string& path, const torch::Tensor& frames_thw3,
                 const VideoWriterOptions& options, const std::vector<double>& pts_seconds) {
  if (frames_thw3.dim() != 4 || frames_thw3.size(3) != 3)
    fail_file(path, "frames must be [T,H,W,3], got " + c10::str(frames_thw3.sizes()));
  if (!pts_seconds.empty() && static_cast<int64_t>(pts_seconds.size()) != frames_thw3.size(0))
    fail_file(path, "one timestamp per frame expected");
  VideoWriter writer(path, frames_thw3.size(2), frames_thw3.size(1), options);
  for (int64_t t = 0; t < frames_thw3.size(0); ++t) {
    if (pts_seconds.empty())
      writer.write(frames_thw3[t]);
    else
      writer.write(frames_thw3[t], pts_seconds[t]);
  }
  writer.close();
}

}  // namespace vidfuse::io
