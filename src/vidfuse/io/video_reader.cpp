#include "vidfuse/io/video_reader.h"

extern "C" {
#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libavutil/display.h>
#include <libavutil/imgutils.h>
#include <libavutil/pixdesc.h>
#include <libswscale/swscale.h>
}

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>

#include "vidfuse/core/error.h"
#include "vidfuse/io/ffmpeg_util.h"

namespace vidfuse::io {

// Outside the anonymous namespace: VideoReader::Impl (a class with external linkage) holds one,
// and a member of an internal-linkage type is an ODR hazard once sources are batched (unity
// builds, -Wsubobject-linkage). The namespace name keeps it private to this file all the same.
namespace video_reader_detail {
// How to turn decoded pictures upright, following the ffmpeg command line's autorotate (5.1).
struct Orientation {
  int rotation = 0;  // clockwise degrees, reported
  bool transpose = false;
  bool flip_rows = false;
  bool flip_cols = false;
  bool identity() const { return !transpose && !flip_rows && !flip_cols; }
};

}  // namespace video_reader_detail

namespace {

using video_reader_detail::Orientation;

std::string format_list(const std::vector<int64_t>& v, size_t limit = 12) {
  std::string s = "[";
  for (size_t i = 0; i < v.size() && i < limit; ++i) s += (i ? ", " : "") + std::to_string(v[i]);
  if (v.size() > limit) s += ", … (" + std::to_string(v.size()) + " in all)";
  return s + "]";
}

Orientation orientation_from(const int32_t* m) {
  Orientation o;
  if (!m) return o;
  const double angle = av_display_rotation_get(m);
  if (std::isnan(angle)) return o;
  double theta = -std::round(angle);
  theta -= 360 * std::floor(theta / 360 + 0.9 / 360);
  if (std::fabs(theta - 90) < 1.0) {
    o.rotation = 90;
    o.transpose = true;  // "clock" = transpose + hflip; "cclock_flip" = transpose alone
    o.flip_cols = !(m[3] > 0);
  } else if (std::fabs(theta - 180) < 1.0) {
    o.rotation = 180;
    o.flip_cols = m[0] < 0;
    o.flip_rows = m[4] < 0;
  } else if (std::fabs(theta - 270) < 1.0) {
    o.rotation = 270;
    o.transpose = true;  // "cclock" = transpose + vflip; "clock_flip" = transpose + both flips
    o.flip_rows = true;
    o.flip_cols = m[3] < 0;
  } else if (std::fabs(theta) < 1.0) {
    o.flip_rows = m[4] < 0;
  }
  return o;
}

torch::Tensor apply_orientation(torch::Tensor x, const Orientation& o) {  // x: [T,H,W,3]
  if (o.identity()) return x;
  if (o.transpose) x = x.transpose(1, 2);
  std::vector<int64_t> dims;
  if (o.flip_rows) dims.push_back(1);
  if (o.flip_cols) dims.push_back(2);
  if (!dims.empty()) x = x.flip(dims);
  if (x.is_contiguous()) return x;
  return empty_frame_buffer(x.sizes()).copy_(x);
}

AVPixelFormat unjpeg(AVPixelFormat f, bool* full_range) {
  switch (f) {
    case AV_PIX_FMT_YUVJ420P:
      *full_range = true;
      return AV_PIX_FMT_YUV420P;
    case AV_PIX_FMT_YUVJ422P:
      *full_range = true;
      return AV_PIX_FMT_YUV422P;
    case AV_PIX_FMT_YUVJ444P:
      *full_range = true;
      return AV_PIX_FMT_YUV444P;
    case AV_PIX_FMT_YUVJ440P:
      *full_range = true;
      return AV_PIX_FMT_YUV440P;
    case AV_PIX_FMT_YUVJ411P:
      *full_range = true;
      return AV_PIX_FMT_YUV411P;
    default:
      return f;
  }
}

}  // namespace

struct VideoReader::Impl {
  std::string path;
  DecodeOptions opt;
  MediaInfo info;
  std::vector<std::string> warnings;
  ReadStats stats;

  AVFormatContext* fmt = nullptr;
  AVCodecContext* dec = nullptr;
  int si = -1;
  AVRational tb{1, 1};
  AVFrame* frame = nullptr;
  AVFrame* prev = nullptr;
  int64_t prev_idx = -1;
  AVPacket* packet = nullptr;
  Orientation orient;
  int64_t coded_w = 0, coded_h = 0;

  SwsContext* sws = nullptr;
  int sws_key[5] = {-1, -1, -1, -1, -1};
  std::vector<uint8_t> scratch;

  // Demux/decode state.
  bool at_start = true;  // nothing read since open (so no rewind is needed)
  bool demux_eof = false;
  bool count_mode = false;  // no usable pts (none at all, or dts only): placed by output order
  int64_t count_next = 0;
  int64_t last_mapped = -1;
  bool seek_ok = true;
  int64_t skip_until_pts = AV_NOPTS_VALUE;  // after a seek: drop packets before this keyframe
  bool skipping = false;            // during read(): non-reference frames not wanted are skipped
  std::vector<int64_t> wanted_pts;  // sorted pts of the frames the current read() wants

  // The table (sorted by pts).
  bool table_built = false;
  FrameTable table;
  std::vector<int64_t> pts;
  std::vector<int64_t> seek_ts;     // where to seek to reach keyframe i (its dts where known)
  std::vector<int64_t> key_before;  // latest keyframe index <= i

  // Per-read diagnostics.
  int64_t bad_packets = 0;
  std::vector<int64_t> damaged;
  std::string read_error;

  [[noreturn]] void fail(const std::string& what) const { fail_file(path, what); }

  ~Impl() {
    sws_freeContext(sws);
    av_frame_free(&frame);
    av_frame_free(&prev);
    av_packet_free(&packet);
    avcodec_free_context(&dec);
    avformat_close_input(&fmt);
  }

  void open_container() {
    int ret = avformat_open_input(&fmt, path.c_str(), nullptr, nullptr);
    if (ret == AVERROR_INVALIDDATA)
      fail("not a video file, or a truncated/corrupt one (FFmpeg: " + av_error_text(ret) + ")");
    if (ret < 0) fail("cannot open: " + av_error_text(ret));
    ret = avformat_find_stream_info(fmt, nullptr);
    if (ret < 0)
      fail("cannot read the stream parameters (" + av_error_text(ret) +
           "): truncated or corrupt file?");
  }

  void open() {
    configure_ffmpeg_logging();
    struct stat sb {};
    if (::stat(path.c_str(), &sb) != 0)
      fail(errno == ENOENT ? "no such file"
                           : std::string("cannot access: ") + std::strerror(errno));
    if (S_ISDIR(sb.st_mode)) fail("is a directory, not a video file");
    if (sb.st_size == 0) fail("empty file (0 bytes)");
    if (::access(path.c_str(), R_OK) != 0)
      fail(std::string("cannot read: ") + std::strerror(errno));
    open_container();

    const std::string demuxer = fmt->iformat ? fmt->iformat->name : "";
    std::string streams;
    int best = av_find_best_stream(fmt, AVMEDIA_TYPE_VIDEO, -1, -1, nullptr, 0);
    if (best >= 0 && (fmt->streams[best]->disposition & AV_DISPOSITION_ATTACHED_PIC)) best = -1;
    for (unsigned i = 0; i < fmt->nb_streams; ++i) {
      const AVStream* s = fmt->streams[i];
      const char* type = av_get_media_type_string(s->codecpar->codec_type);
      streams += std::string(streams.empty() ? "" : ", ") + (type ? type : "unknown");
      if (best < 0 && s->codecpar->codec_type == AVMEDIA_TYPE_VIDEO &&
          !(s->disposition & AV_DISPOSITION_ATTACHED_PIC))
        best = static_cast<int>(i);
    }
    if (best < 0)
      fail("no video stream (" +
           (streams.empty() ? std::string("no streams at all") : "streams: " + streams) + ")");
    si = best;
    AVStream* st = fmt->streams[si];
    // FFmpeg happily reads text as "ANSI art" video; nobody means that.
    if (demuxer == "tty" || st->codecpar->codec_id == AV_CODEC_ID_ANSI)
      fail("not a video file (FFmpeg only recognises it as text)");
    if (st->codecpar->width <= 0 || st->codecpar->height <= 0)
      fail("the video stream has no frame size (corrupt or truncated header?)");
    for (unsigned i = 0; i < fmt->nb_streams; ++i)
      if (static_cast<int>(i) != si) fmt->streams[i]->discard = AVDISCARD_ALL;
    tb = st->time_base;

    const AVCodec* codec = avcodec_find_decoder(st->codecpar->codec_id);
    if (!codec)
      fail(std::string("no decoder for codec ") + avcodec_get_name(st->codecpar->codec_id) +
           " in this FFmpeg build");
    dec = avcodec_alloc_context3(codec);
    if (!dec || avcodec_parameters_to_context(dec, st->codecpar) < 0)
      fail("cannot set up the decoder");
    dec->pkt_timebase = st->time_base;
    dec->thread_count = std::max(0, opt.threads);
    dec->thread_type = FF_THREAD_FRAME | FF_THREAD_SLICE;
    int ret = avcodec_open2(dec, codec, nullptr);
    if (ret < 0)
      fail(std::string("cannot open the ") + codec->name + " decoder: " + av_error_text(ret));
    frame = av_frame_alloc();
    prev = av_frame_alloc();
    packet = av_packet_alloc();
    if (!frame || !prev || !packet) fail("out of memory");

    coded_w = st->codecpar->width;
    coded_h = st->codecpar->height;
    const auto* matrix = reinterpret_cast<const int32_t*>(
        av_stream_get_side_data(st, AV_PKT_DATA_DISPLAYMATRIX, nullptr));
    if (opt.apply_rotation) orient = orientation_from(matrix);
    const Orientation reported = orientation_from(matrix);

    info.path = path;
    info.kind = "video";
    info.container = demuxer;
    info.codec = avcodec_get_name(st->codecpar->codec_id);
    const char* pix = av_get_pix_fmt_name(static_cast<AVPixelFormat>(st->codecpar->format));
    info.pixel_format = pix ? pix : "";
    info.rotation = reported.rotation;
    info.width = orient.transpose ? coded_h : coded_w;
    info.height = orient.transpose ? coded_w : coded_h;
    AVRational rate = st->avg_frame_rate;
    if (rate.num <= 0 || rate.den <= 0) rate = st->r_frame_rate;
    info.fps = (rate.num > 0 && rate.den > 0) ? av_q2d(rate) : 0.0;
    if (st->duration != AV_NOPTS_VALUE && st->duration > 0)
      info.duration = static_cast<double>(st->duration) * av_q2d(tb);
    else if (fmt->duration != AV_NOPTS_VALUE && fmt->duration > 0)
      info.duration = static_cast<double>(fmt->duration) / AV_TIME_BASE;
    if (st->nb_frames > 0) {
      info.frame_count = st->nb_frames;
      info.frame_count_source = "header";
    }
    info.bit_rate = st->codecpar->bit_rate > 0 ? st->codecpar->bit_rate : fmt->bit_rate;
  }

  void reopen() {
    avformat_close_input(&fmt);
    open_container();
    for (unsigned i = 0; i < fmt->nb_streams; ++i)
      if (static_cast<int>(i) != si) fmt->streams[i]->discard = AVDISCARD_ALL;
  }

  void reset_decoder() {
    avcodec_flush_buffers(dec);
    demux_eof = false;
    skip_until_pts = AV_NOPTS_VALUE;
    av_frame_unref(prev);
    prev_idx = -1;
    last_mapped = -1;
    count_next = 0;
  }

  // Back to the first frame. Seeking there is reliable nearly everywhere; reopening covers the
  // rest.
  void rewind() {
    if (at_start) {
      at_start = false;
      return;
    }
    const AVStream* st = fmt->streams[si];
    const int64_t start = st->start_time != AV_NOPTS_VALUE ? st->start_time : 0;
    int ret = avformat_seek_file(fmt, si, INT64_MIN, start, start, 0);
    if (ret < 0) reopen();
    reset_decoder();
  }

  // Seeks so that decoding continues at keyframe `k` (a table index).
  void seek_to_key(int64_t k) {
    if (k == 0 || !seek_ok) {
      rewind();
      return;
    }
    at_start = false;
    ++stats.seeks;
    int ret = av_seek_frame(fmt, si, seek_ts[k], AVSEEK_FLAG_BACKWARD);
    if (ret < 0) {
      seek_ok = false;
      rewind();
      return;
    }
    reset_decoder();
    // Demuxers land on *a* keyframe at or before the timestamp (MP4 with an edit list lands a
    // whole GOP early); packets before the one we want are dropped unread by the decoder.
    skip_until_pts = pts[k];
  }

  // The next decoded picture in presentation order; false at the end of the stream.
  bool next_frame() {
    int guard = 0;
    while (true) {
      int ret = avcodec_receive_frame(dec, frame);
      if (ret == 0) {
        ++stats.decoded;
        return true;
      }
      if (ret == AVERROR_EOF) return false;
      if (ret != AVERROR(EAGAIN)) {
        ++bad_packets;  // frame-threaded decoders report a bad packet here, one call later
        if (++guard > 1000) return false;
        continue;
      }
      if (demux_eof) return false;
      ret = av_read_frame(fmt, packet);
      if (ret < 0) {
        if (ret != AVERROR_EOF && read_error.empty()) read_error = av_error_text(ret);
        demux_eof = true;
        avcodec_send_packet(dec, nullptr);
        continue;
      }
      if (packet->stream_index == si && skip_until_pts != AV_NOPTS_VALUE) {
        const int64_t p = packet->pts != AV_NOPTS_VALUE ? packet->pts : packet->dts;
        if (p < skip_until_pts || (p == skip_until_pts && !(packet->flags & AV_PKT_FLAG_KEY))) {
          av_packet_unref(packet);
          continue;
        }
        // The keyframe itself, or (inexact index) something after it: the caller notices.
        skip_until_pts = AV_NOPTS_VALUE;
      }
      if (packet->stream_index == si) {
        if (skipping) {
          const int64_t p = packet->pts != AV_NOPTS_VALUE ? packet->pts : packet->dts;
          const bool wanted =
              p == AV_NOPTS_VALUE || std::binary_search(wanted_pts.begin(), wanted_pts.end(), p);
          // Read per packet, also by frame-threaded decoders (copied when the packet is queued).
          dec->skip_frame = wanted ? AVDISCARD_DEFAULT : AVDISCARD_NONREF;
        }
        ret = avcodec_send_packet(dec, packet);
        if (ret < 0 && ret != AVERROR(EAGAIN)) ++bad_packets;
      }
      av_packet_unref(packet);
    }
  }

  // Table index of the picture in `frame`, or -1 when it is not one of the table's frames.
  int64_t place_frame() {
    if (count_mode) return last_mapped = count_next++;
    int64_t ts = frame->best_effort_timestamp;
    if (ts == AV_NOPTS_VALUE) ts = frame->pts;
    if (ts == AV_NOPTS_VALUE)
      return last_mapped = std::min<int64_t>(last_mapped + 1, table.size() - 1);
    auto it = std::lower_bound(pts.begin(), pts.end(), ts);
    int64_t j = it - pts.begin();
    if (it != pts.end() && *it == ts) return last_mapped = j;
    // Not exact: accept the nearest table entry within a quarter of the local frame gap.
    int64_t best = -1;
    int64_t best_d = INT64_MAX;
    for (int64_t c : {j - 1, j}) {
      if (c < 0 || c >= static_cast<int64_t>(pts.size())) continue;
      const int64_t d = std::llabs(pts[c] - ts);
      if (d < best_d) best = c, best_d = d;
    }
    if (best < 0) return -1;
    const int64_t gap =
        pts.size() > 1 ? (best + 1 < static_cast<int64_t>(pts.size()) ? pts[best + 1] - pts[best]
                                                                      : pts[best] - pts[best - 1])
                       : 1;
    if (best_d * 4 > gap) return -1;
    return last_mapped = best;
  }

  void build_table() {
    if (table_built) return;
    rewind();
    struct Entry {
      int64_t pts, seek_ts, duration;
      bool key;
    };
    std::vector<Entry> entries;
    int64_t missing_ts = 0, leading = 0, dts_only = 0;
    bool seen_key = false;
    bool any_key = false;
    int64_t packets = 0;
    int ret = 0;
    std::vector<Entry> before_key;
    while ((ret = av_read_frame(fmt, packet)) >= 0) {
      if (packet->stream_index == si && !(packet->flags & AV_PKT_FLAG_DISCARD)) {
        ++packets;
        const int64_t p = packet->pts != AV_NOPTS_VALUE ? packet->pts : packet->dts;
        if (p == AV_NOPTS_VALUE) ++missing_ts;
        if (packet->pts == AV_NOPTS_VALUE && packet->dts != AV_NOPTS_VALUE) ++dts_only;
        const bool key = packet->flags & AV_PKT_FLAG_KEY;
        Entry e{p, packet->dts != AV_NOPTS_VALUE ? std::min(packet->dts, p) : p, packet->duration,
                key};
        if (key) any_key = seen_key = true;
        (seen_key ? entries : before_key).push_back(e);
      }
      av_packet_unref(packet);
    }
    if (ret != AVERROR_EOF)
      warnings.push_back(path + ": read error after " + std::to_string(packets) +
                         " video packets (" + av_error_text(ret) +
                         "): the file looks truncated or damaged");
    demux_eof = true;
    if (!any_key) {
      // No keyframe marks at all (some AVI/raw streams): no safe seek points, decode from the
      // start.
      entries = std::move(before_key);
      seek_ok = false;
    } else {
      leading = static_cast<int64_t>(before_key.size());
    }
    if (missing_ts > 0) {
      build_table_by_decoding();
      return;
    }
    if (dts_only > 0) {
      // AVI and other containers that store decode timestamps only: a decoder with a reorder
      // delay (MPEG-4 ASP / XviD B-frames) stamps each picture with the dts of a later packet, so
      // matching pictures by timestamp puts every frame one place late (frame 0 twice, the last
      // one lost). Without pts the presentation order *is* the decoder's output order: place
      // pictures by that count, and decode from the start (seeks would reset the count).
      count_mode = true;
      seek_ok = false;
    }
    std::stable_sort(entries.begin(), entries.end(),
                     [](const Entry& a, const Entry& b) { return a.pts < b.pts; });
    int64_t duplicates = 0;
    for (size_t i = 0; i < entries.size(); ++i) {
      if (i > 0 && entries[i].pts == entries[i - 1].pts) {
        ++duplicates;
        continue;
      }
      pts.push_back(entries[i].pts);
      seek_ts.push_back(entries[i].seek_ts);
      table.keyframe.push_back(entries[i].key ? 1 : 0);
    }
    if (!pts.empty() && !any_key) table.keyframe[0] = 1;
    if (leading > 0)
      warnings.push_back(
          path + ": the stream starts with " + std::to_string(leading) +
          " frame(s) before its first keyframe; they cannot be decoded and are skipped");
    if (duplicates > 0)
      warnings.push_back(path + ": " + std::to_string(duplicates) +
                         " packet(s) repeat an earlier timestamp and were ignored");
    const int64_t last_duration = entries.empty() ? 0 : entries.back().duration;
    finish_table(last_duration);
  }

  // Fallback when packets carry no timestamps (raw elementary streams): decode once, count.
  void build_table_by_decoding() {
    pts.clear();
    seek_ts.clear();
    table.keyframe.clear();
    rewind();
    count_mode = true;
    seek_ok = false;
    const int64_t n = decode_count();
    for (int64_t i = 0; i < n; ++i) {
      pts.push_back(i);
      seek_ts.push_back(i);
      table.keyframe.push_back(i == 0);
    }
    const double fps = info.fps > 0 ? info.fps : 25.0;
    tb = av_d2q(1.0 / fps, 1 << 20);
    warnings.push_back(path +
                       ": the stream has no timestamps; frames are placed at 1/fps intervals");
    finish_table(1);
  }

  void finish_table(int64_t last_duration) {
    const size_t n = pts.size();
    table.times.resize(n);
    key_before.resize(n);
    const double unit = av_q2d(tb);
    int64_t k = 0;
    for (size_t i = 0; i < n; ++i) {
      table.times[i] = static_cast<double>(pts[i] - pts[0]) * unit;
      if (table.keyframe[i]) k = static_cast<int64_t>(i);
      key_before[i] = k;
    }
    if (n > 0) {
      double last = last_duration > 0 ? static_cast<double>(last_duration) * unit : 0.0;
      if (last <= 0)
        last = n > 1 ? table.times[n - 1] - table.times[n - 2]
                     : (info.fps > 0 ? 1.0 / info.fps : 0.04);
      table.end_time = table.times[n - 1] + last;
    }
    table_built = true;
    if (info.frame_count_source == "header" && info.frame_count != static_cast<int64_t>(n))
      warnings.push_back(path + ": the header says " + std::to_string(info.frame_count) +
                         " frames but the stream holds " + std::to_string(n) + "; using " +
                         std::to_string(n));
    if (info.frame_count_source != "decoded") {
      info.frame_count = static_cast<int64_t>(n);
      info.frame_count_source = "index";
    }
    if (info.duration > 0 && n > 0 && info.fps > 0 &&
        table.end_time + 2.0 / info.fps < 0.98 * info.duration)
      warnings.push_back(path + ": the frames end at " + std::to_string(table.end_time) +
                         " s but the header says " + std::to_string(info.duration) +
                         " s: truncated file?");
    if (info.duration <= 0) info.duration = table.end_time;
    if (info.fps <= 0 && n > 1) info.fps = static_cast<double>(n - 1) / table.times[n - 1];
  }

  int64_t decode_count() {
    int64_t n = 0;
    while (next_frame()) {
      ++n;
      av_frame_unref(frame);
    }
    return n;
  }

  void convert(const AVFrame* f, uint8_t* dst) {
    bool full_range = f->color_range == AVCOL_RANGE_JPEG;
    const AVPixelFormat src_fmt = unjpeg(static_cast<AVPixelFormat>(f->format), &full_range);
    const int key[5] = {f->width, f->height, src_fmt, static_cast<int>(f->colorspace), full_range};
    if (!sws || !std::equal(key, key + 5, sws_key)) {
      sws = sws_getCachedContext(sws, f->width, f->height, src_fmt, static_cast<int>(coded_w),
                                 static_cast<int>(coded_h), AV_PIX_FMT_RGB24, SWS_BILINEAR, nullptr,
                                 nullptr, nullptr);
      if (!sws)
        fail("no conversion from pixel format " + std::string(av_get_pix_fmt_name(src_fmt)) +
             " to RGB");
      int* inv_table = nullptr;
      int* table_unused = nullptr;
      int src_range = 0, dst_range = 0, brightness = 0, contrast = 0, saturation = 0;
      if (sws_getColorspaceDetails(sws, &inv_table, &src_range, &table_unused, &dst_range,
                                   &brightness, &contrast, &saturation) >= 0) {
        sws_setColorspaceDetails(sws, sws_getCoefficients(f->colorspace), full_range ? 1 : 0,
                                 sws_getCoefficients(SWS_CS_DEFAULT), 1, brightness, contrast,
                                 saturation);
      }
      std::copy(key, key + 5, sws_key);
    }
    const int row = static_cast<int>(coded_w * 3);
    // libswscale's SIMD paths want 16-byte aligned rows; odd widths go through a padded buffer.
    if (row % 16 == 0 && reinterpret_cast<uintptr_t>(dst) % 16 == 0) {
      uint8_t* planes[4] = {dst, nullptr, nullptr, nullptr};
      int strides[4] = {row, 0, 0, 0};
      sws_scale(sws, f->data, f->linesize, 0, f->height, planes, strides);
      return;
    }
    const int padded = (row + 63) & ~63;
    scratch.resize(static_cast<size_t>(padded) * coded_h + 64);
    uint8_t* base = scratch.data() + ((64 - reinterpret_cast<uintptr_t>(scratch.data()) % 64) % 64);
    uint8_t* planes[4] = {base, nullptr, nullptr, nullptr};
    int strides[4] = {padded, 0, 0, 0};
    sws_scale(sws, f->data, f->linesize, 0, f->height, planes, strides);
    for (int64_t y = 0; y < coded_h; ++y) std::memcpy(dst + y * row, base + y * padded, row);
  }

  torch::Tensor read(const std::vector<int64_t>& indices, std::vector<std::string>* out_warnings);
};

torch::Tensor VideoReader::Impl::read(const std::vector<int64_t>& indices,
                                      std::vector<std::string>* out_warnings) {
  build_table();
  const int64_t n = table.size();
  if (n == 0) fail("no decodable video frames");
  for (int64_t i : indices)
    if (i < 0 || i >= n)
      fail("frame index " + std::to_string(i) + " out of range (the video has " +
           std::to_string(n) + " frames)");
  stats = ReadStats{};
  bad_packets = 0;
  damaged.clear();
  read_error.clear();

  std::vector<int64_t> targets(indices);
  std::sort(targets.begin(), targets.end());
  targets.erase(std::unique(targets.begin(), targets.end()), targets.end());
  const int64_t T = static_cast<int64_t>(targets.size());
  wanted_pts.clear();
  for (int64_t t : targets) wanted_pts.push_back(pts[t]);
  skipping = opt.skip_unneeded && !count_mode;
  struct SkipOff {  // whatever happens, later decodes (counting) see every frame
    Impl* m;
    ~SkipOff() {
      m->skipping = false;
      m->dec->skip_frame = AVDISCARD_DEFAULT;
    }
  } skip_off{this};
  torch::Tensor out = empty_frame_buffer({T, coded_h, coded_w, 3});
  if (T == 0) return apply_orientation(out, orient);
  const int64_t frame_bytes = coded_h * coded_w * 3;
  uint8_t* base = out.data_ptr<uint8_t>();

  // Plan: runs of wanted frames decoded in one go, each starting with a seek (the first one
  // with a seek or a rewind, since indexing left the demuxer at the end).
  struct Run {
    int64_t start_key;
    int64_t last;  // position in targets of the run's last frame
  };
  const int64_t threads = std::max(1, dec->thread_count);
  const int64_t seek_cost =
      2 + threads;  // refilling a flushed frame-threaded decoder wastes ~1 frame/thread
  std::vector<Run> runs;
  for (int64_t p = 0; p < T; ++p) {
    const int64_t t = targets[p];
    const int64_t k = (opt.seek == SeekMode::Never || !seek_ok) ? 0 : key_before[t];
    if (runs.empty()) {
      runs.push_back({k, p});
      continue;
    }
    const int64_t end = targets[runs.back().last];
    bool seek = false;
    if (k > end && opt.seek != SeekMode::Never && seek_ok) {
      seek = opt.seek == SeekMode::Always || (t - k + 1 + seek_cost < t - end);
    }
    if (seek)
      runs.push_back({k, p});
    else
      runs.back().last = p;
  }

  std::vector<int64_t> substituted;
  int64_t next = 0;  // position in targets of the next frame to fill
  bool ended = false;
  bool continue_without_seek = false;
  for (size_t r = 0; r < runs.size() && !ended; ++r) {
    // Once a seek has proven inexact the remaining runs simply decode on from where we are.
    if (r > 0 && !seek_ok) continue_without_seek = true;
    if (!continue_without_seek) seek_to_key(runs[r].start_key);
    bool first_after_seek = !continue_without_seek && runs[r].start_key > 0;
    while (next <= runs[r].last) {
      if (!next_frame()) {
        ended = true;
        break;
      }
      const int64_t idx = place_frame();
      if (idx < 0) continue;
      if (frame->decode_error_flags || (frame->flags & AV_FRAME_FLAG_CORRUPT))
        damaged.push_back(idx);
      if (first_after_seek) {
        first_after_seek = false;
        if (idx > runs[r].start_key && idx > targets[next]) {
          // The demuxer landed after the keyframe we asked for (inexact index): start over from
          // the beginning and stop trusting seeks in this file.
          seek_ok = false;
          rewind();
          continue;
        }
      }
      while (next < T && targets[next] < idx) {
        // A wanted frame never came out of the decoder: show what was on screen instead.
        const AVFrame* src = prev_idx >= 0 ? prev : frame;
        convert(src, base + next * frame_bytes);
        ++stats.converted;
        substituted.push_back(targets[next]);
        ++next;
      }
      if (next < T && targets[next] == idx) {
        convert(frame, base + next * frame_bytes);
        ++stats.converted;
        ++next;
      }
      av_frame_unref(prev);
      av_frame_move_ref(prev, frame);
      prev_idx = idx;
    }
  }
  if (next < T) {
    if (prev_idx < 0)
      fail("no frame could be decoded" + (read_error.empty() ? "" : " (" + read_error + ")"));
    for (; next < T; ++next) {
      convert(prev, base + next * frame_bytes);
      ++stats.converted;
      substituted.push_back(targets[next]);
    }
  }
  stats.substituted = static_cast<int64_t>(substituted.size());

  std::vector<std::string> w;
  if (!substituted.empty())
    w.push_back(
        path + ": " + std::to_string(substituted.size()) +
        " wanted frame(s) could not be decoded and were replaced by the nearest decoded frame: " +
        format_list(substituted));
  if (bad_packets > 0)
    w.push_back(path + ": " + std::to_string(bad_packets) +
                " packet(s) failed to decode (corrupt data skipped)");
  std::sort(damaged.begin(), damaged.end());
  damaged.erase(std::unique(damaged.begin(), damaged.end()), damaged.end());
  std::vector<int64_t> damaged_wanted;
  std::set_intersection(damaged.begin(), damaged.end(), targets.begin(), targets.end(),
                        std::back_inserter(damaged_wanted));
  if (!damaged_wanted.empty())
    w.push_back(path + ": frame(s) " + format_list(damaged_wanted) +
                " decoded with errors (concealed by the decoder)");
  if (!read_error.empty())
    w.push_back(path + ": read error (" + read_error + "): truncated or damaged file");
  if (out_warnings) out_warnings->insert(out_warnings->end(), w.begin(), w.end());

  out = apply_orientation(out, orient);
  // Unique sorted frames → the order (and repeats) asked for.
  std::vector<int64_t> pos(indices.size());
  for (size_t i = 0; i < indices.size(); ++i)
    pos[i] = std::lower_bound(targets.begin(), targets.end(), indices[i]) - targets.begin();
  if (static_cast<int64_t>(pos.size()) == T && std::is_sorted(indices.begin(), indices.end()) &&
      std::adjacent_find(indices.begin(), indices.end()) == indices.end())
    return out;
  torch::Tensor ordered =
      empty_frame_buffer({static_cast<int64_t>(pos.size()), out.size(1), out.size(2), 3});
  return torch::index_select_out(ordered, out, 0, torch::tensor(pos, torch::kLong));
}

VideoReader::VideoReader(const std::string& path, DecodeOptions options)
    : impl_(std::make_unique<Impl>()) {
  impl_->path = path;
  impl_->opt = options;
  impl_->open();
}

VideoReader::~VideoReader() = default;

const MediaInfo& VideoReader::info() const { return impl_->info; }

const FrameTable& VideoReader::frames() {
  impl_->build_table();
  return impl_->table;
}

torch::Tensor VideoReader::read(const std::vector<int64_t>& indices,
                                std::vector<std::string>* warnings) {
  return impl_->read(indices, warnings);
}

torch::Tensor VideoReader::read_all(std::vector<std::string>* warnings) {
  const int64_t n = frames().size();
  std::vector<int64_t> all(n);
  for (int64_t i = 0; i < n; ++i) all[i] = i;
  return read(all, warnings);
}

const std::vector<std::string>& VideoReader::warnings() const { return impl_->warnings; }

int64_t VideoReader::count_frames_by_decoding() {
  Impl& m = *impl_;
  m.rewind();
  m.stats = ReadStats{};
  const int64_t n = m.decode_count();
  m.info.frame_count = n;
  m.info.frame_count_source = "decoded";
  return n;
}

const VideoReader::ReadStats& VideoReader::last_read_stats() const { return impl_->stats; }

}  // namespace vidfuse::io
