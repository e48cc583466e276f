#include "vidfuse/data/synth_render.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "vidfuse/core/error.h"
#include "vidfuse/data/synth_catalogue.h"
#include "vidfuse/io/sampling.h"

namespace vidfuse::data {

namespace {

using io::SampleRng;

float smoothstep(float t) { return t * t * (3.f - 2.f * t); }

// Per-clip appearance of the object. The texture lives in object coordinates, so it turns with
// the object and makes rotation visible even on round shapes.
struct ObjectLook {
  SynthShape shape;
  float rgb[3];
  int texture;  // 0 plain with a highlight spot, 1 stripes, 2 two-tone halves
  float stripe_freq;
};

void shade(const ObjectLook& look, float u, float v, float out[3]) {
  float mul = 1.f - 0.12f * v;  // light from above
  float add = 0.f;
  switch (look.texture) {
    case 0: {
      const float du = u - 0.35f, dv = v + 0.35f;
      if (du * du + dv * dv < 0.09f) {
        mul *= 0.6f;
        add = 100.f;
      }
      break;
    }
    case 1:
      if (std::fmod(u * look.stripe_freq + 64.f, 2.f) < 1.f) mul *= 0.6f;
      break;
    default:
      if (u > 0.f) mul *= 0.65f;
      break;
  }
  for (int c = 0; c < 3; ++c) out[c] = look.rgb[c] * mul + add;
}

// A background drawn once per clip on a canvas a few pixels larger than the frame, so camera
// jitter can shift it.
std::vector<float> make_background(SampleRng& rng, int64_t cw, int64_t ch) {
  float c1[3], c2[3];
  const float g1 = static_cast<float>(rng.uniform_real(50, 190));
  const float g2 = synth_clamp(
      g1 + static_cast<float>(rng.uniform_real(30, 70)) * (rng.uniform_int(2) ? 1.f : -1.f), 20,
      235);
  for (int c = 0; c < 3; ++c) {
    c1[c] = synth_clamp(g1 + static_cast<float>(rng.uniform_real(-25, 25)), 0, 255);
    c2[c] = synth_clamp(g2 + static_cast<float>(rng.uniform_real(-25, 25)), 0, 255);
  }
  const int kind = static_cast<int>(rng.uniform_int(5));
  const double angle = rng.uniform_real(0, kSynthPi);
  const float ca = static_cast<float>(std::cos(angle)), sa = static_cast<float>(std::sin(angle));
  const float period = static_cast<float>(rng.uniform_real(8, 26));
  const float cell = static_cast<float>(rng.uniform_real(12, 36));
  const float ox = static_cast<float>(rng.uniform_real(0, cw)),
              oy = static_cast<float>(rng.uniform_real(0, ch));
  // Value-noise lattice (drawn whatever the kind, so the draw order never depends on it).
  const int64_t gw = static_cast<int64_t>(cw / 12) + 3, gh = static_cast<int64_t>(ch / 12) + 3;
  std::vector<float> lattice(gw * gh);
  for (auto& l : lattice) l = static_cast<float>(rng.uniform_real(0, 1));

  std::vector<float> bg(cw * ch * 3);
  const float diag = std::sqrt(static_cast<float>(cw * cw + ch * ch));
  for (int64_t y = 0; y < ch; ++y) {
    for (int64_t x = 0; x < cw; ++x) {
      const float fx = static_cast<float>(x) + 0.5f, fy = static_cast<float>(y) + 0.5f;
      float t = 0.f;
      switch (kind) {
        case 0:  // linear gradient
          t = synth_clamp(0.5f + ((fx - cw / 2.f) * ca + (fy - ch / 2.f) * sa) / diag, 0, 1);
          break;
        case 1: {  // radial gradient around a random point
          const float dx = fx - ox, dy = fy - oy;
          t = synth_clamp(std::sqrt(dx * dx + dy * dy) / diag * 1.5f, 0, 1);
          break;
        }
        case 2:  // soft stripes
          t = 0.5f +
              0.5f * std::sin(2.f * static_cast<float>(kSynthPi) * (fx * ca + fy * sa) / period);
          break;
        case 3: {                                      // smooth value noise
          const float gx = fx / cell, gy = fy / cell;  // cell >= 12: inside the lattice
          const int64_t ix = std::min<int64_t>(static_cast<int64_t>(gx), gw - 2);
          const int64_t iy = std::min<int64_t>(static_cast<int64_t>(gy), gh - 2);
          const float tx = smoothstep(synth_clamp(gx - static_cast<float>(ix), 0, 1));
          const float ty = smoothstep(synth_clamp(gy - static_cast<float>(iy), 0, 1));
          const float a = lattice[iy * gw + ix], b = lattice[iy * gw + ix + 1];
          const float c = lattice[(iy + 1) * gw + ix], d = lattice[(iy + 1) * gw + ix + 1];
          t = (a * (1 - tx) + b * tx) * (1 - ty) + (c * (1 - tx) + d * tx) * ty;
          break;
        }
        default: {  // checkerboard, low contrast
          const int64_t qx = static_cast<int64_t>(std::floor(fx / cell));
          const int64_t qy = static_cast<int64_t>(std::floor(fy / cell));
          t = ((qx + qy) & 1) ? 0.7f : 0.3f;
          break;
        }
      }
      float* p = &bg[(y * cw + x) * 3];
      for (int c = 0; c < 3; ++c) p[c] = c1[c] * (1.f - t) + c2[c] * t;
    }
  }
  return bg;
}

// Progress through the motion at frame t: 0 before `t0`, 1 after `t1`, linear or eased between
// (hands start and stop smoothly more or less).
float progress(float t, float t0, float t1, float ease) {
  const float lin = synth_clamp((t - t0) / std::max(1e-3f, t1 - t0), 0, 1);
  return lin * (1 - ease) + smoothstep(lin) * ease;
}

// The poses of a clip's frames: the random draws every action makes (in one fixed order), then
// the action's motion frame by frame.
std::vector<SynthPose> trajectory(SynthMotion motion, SampleRng& rng, float W, float H, int64_t T,
                                  float radius, const SynthRenderOptions& o) {
  auto U = [&](double lo, double hi) { return static_cast<float>(rng.uniform_real(lo, hi)); };
  SynthMotionScene s;
  s.W = W;
  s.H = H;
  s.last = static_cast<float>(T - 1);
  s.radius = radius;
  s.m = radius + 3.f;  // keep the whole object in the frame, jitter included
  s.shake_period = o.shake_period;
  s.shake_still_frame = o.shake_still_frame;
  s.t0 = U(0, 0.2) * s.last;
  s.t1 = U(0.8, 1.0) * s.last;
  s.ease = U(0, 1);
  const float wobble_amp = U(0, 1.8), wobble_freq = U(0.5, 1.5), wobble_phase = U(0, 2 * kSynthPi);
  s.theta0 = U(0, 2 * kSynthPi);
  s.travel = U(0.3, 0.55);
  s.place = U(0, 1);
  s.across = U(0, 1);
  s.big = U(1.6, 2.2);
  s.turn = U(0.5 * kSynthPi, 1.2 * kSynthPi);
  s.drift = U(-0.05, 0.05);
  s.t_event = U(0.3, 0.6) * s.last;
  s.spin = U(-0.5, 0.5);
  s.land = U(0.75, 0.95) * s.last;
  s.release = U(0.05, 0.3) * s.last;

  std::vector<SynthPose> poses(T);
  for (int64_t i = 0; i < T; ++i) {
    SynthMotionFrame f;
    f.t = static_cast<float>(i);
    f.wobble =
        wobble_amp *
        std::sin(2.f * static_cast<float>(kSynthPi) * wobble_freq * f.t / s.last + wobble_phase);
    f.q = progress(f.t, s.t0, s.t1, s.ease);
    SynthPose p;
    p.theta = s.theta0;
    motion(s, f, p);
    poses[i] = p;
  }
  return poses;
}

}  // namespace

RenderedClip render_synth_clip(const SynthRenderOptions& options, const std::string& action,
                               const std::string& object, uint64_t seed) {
  const SynthActionRow& act = synth_action_row(action);
  const SynthObjectRow& def = synth_object_row(object);
  const int64_t W = options.width, H = options.height, T = options.frames;
  if (W < 16 || H < 16 || T < 2) throw Error("synth: clip too small to render");
  SampleRng rng(seed);
  auto U = [&](double lo, double hi) { return static_cast<float>(rng.uniform_real(lo, hi)); };

  // Camera jitter shifts the whole scene by whole pixels; the canvas has room for it.
  const int64_t M = 2;
  const int64_t cw = W + 2 * M, ch = H + 2 * M;
  const std::vector<float> bg = make_background(rng, cw, ch);

  ObjectLook look{def.shape, {0, 0, 0}, static_cast<int>(rng.uniform_int(3)), U(2.0, 4.0)};
  const float brightness = U(0.8, 1.12);
  for (int c = 0; c < 3; ++c)
    look.rgb[c] = synth_clamp(def.rgb[c] * brightness + U(-18, 18), 0, 255);
  const float minside = static_cast<float>(std::min(W, H));
  const float radius = minside * U(0.09, 0.16) * act.size;  // size: room to grow into
  const float jitter = U(0, options.camera_jitter), noise_sigma = U(1, 6), flicker = U(0, 0.03);

  const std::vector<SynthPose> poses =
      trajectory(act.motion, rng, static_cast<float>(W), static_cast<float>(H), T, radius, options);
  // Inside the veil the object is a plain grey ball: its identity shows only outside it.
  const ObjectLook veiled{synth_ball, {200, 200, 200}, 1, 0.f};

  RenderedClip out;
  out.frames = torch::empty({T, H, W, 3}, torch::kUInt8);
  out.coverage = torch::zeros({T, H, W}, torch::kFloat32);
  uint8_t* frames = out.frames.data_ptr<uint8_t>();
  float* coverage = out.coverage.data_ptr<float>();
  std::vector<float> buf(W * H * 3);
  out.shake_x.resize(T);
  out.shake_y.resize(T);
  constexpr int S = 3;  // S×S samples per pixel: anti-aliased edges
  for (int64_t t = 0; t < T; ++t) {
    const int64_t jx = static_cast<int64_t>(std::lround(U(-jitter, jitter)));
    const int64_t jy = static_cast<int64_t>(std::lround(U(-jitter, jitter)));
    const float gain = 1.f + U(-flicker, flicker);
    out.shake_x[t] = jx;
    out.shake_y[t] = jy;
    for (int64_t y = 0; y < H; ++y)
      std::copy_n(&bg[((y + M - jy) * cw + (M - jx)) * 3], W * 3, &buf[y * W * 3]);

    const SynthPose& p = poses[t];
    const ObjectLook& seen = t >= options.veil_begin && t < options.veil_end ? veiled : look;
    float* cov = coverage + t * H * W;
    if (p.alpha > 0.f) {
      const float R = radius * p.scale;
      const float cx = p.cx + static_cast<float>(jx), cy = p.cy + static_cast<float>(jy);
      const float ct = std::cos(p.theta), st = std::sin(p.theta);
      const int64_t x0 = std::max<int64_t>(0, static_cast<int64_t>(std::floor(cx - R - 1)));
      const int64_t x1 = std::min<int64_t>(W - 1, static_cast<int64_t>(std::ceil(cx + R + 1)));
      const int64_t y0 = std::max<int64_t>(0, static_cast<int64_t>(std::floor(cy - R - 1)));
      const int64_t y1 = std::min<int64_t>(H - 1, static_cast<int64_t>(std::ceil(cy + R + 1)));
      for (int64_t y = y0; y <= y1; ++y) {
        for (int64_t x = x0; x <= x1; ++x) {
          float sum[3] = {0, 0, 0};
          int hits = 0;
          for (int sy = 0; sy < S; ++sy) {
            for (int sx = 0; sx < S; ++sx) {
              const float dx = static_cast<float>(x) + (sx + 0.5f) / S - cx;
              const float dy = static_cast<float>(y) + (sy + 0.5f) / S - cy;
              // World → object coordinates: undo the rotation by theta, then the size.
              const float u = (ct * dx + st * dy) / R, v = (-st * dx + ct * dy) / R;
              if (!seen.shape(u, v)) continue;
              float col[3];
              shade(seen, u, v, col);
              for (int c = 0; c < 3; ++c) sum[c] += col[c];
              ++hits;
            }
          }
          if (!hits) continue;
          const float a = p.alpha * static_cast<float>(hits) / (S * S);
          float* px = &buf[(y * W + x) * 3];
          for (int c = 0; c < 3; ++c) px[c] = px[c] * (1 - a) + (sum[c] / hits) * a;
          cov[y * W + x] = a;
        }
      }
    }

    // Sensor noise (luminance, roughly Gaussian as the sum of three uniforms) and a little flicker.
    uint8_t* dst = frames + t * H * W * 3;
    for (int64_t k = 0; k < W * H; ++k) {
      const uint64_t r = rng.next();
      const float n = (static_cast<float>(r & 0x1FFFFF) + static_cast<float>((r >> 21) & 0x1FFFFF) +
                       static_cast<float>((r >> 42) & 0x1FFFFF)) /
                          static_cast<float>(0x1FFFFF) -
                      1.5f;
      const float add = n * 2.f * noise_sigma;
      for (int c = 0; c < 3; ++c)
        dst[k * 3 + c] =
            static_cast<uint8_t>(synth_clamp(std::nearbyint(buf[k * 3 + c] * gain + add), 0, 255));
    }
  }

  out.area.resize(T);
  out.cx.resize(T);
  out.cy.resize(T);
  for (int64_t t = 0; t < T; ++t) {
    const float* cov = coverage + t * H * W;
    double s = 0, sx = 0, sy = 0;
    for (int64_t y = 0; y < H; ++y)
      for (int64_t x = 0; x < W; ++x) {
        const double a = cov[y * W + x];
        s += a;
        sx += a * (static_cast<double>(x) + 0.5);
        sy += a * (static_cast<double>(y) + 0.5);
      }
    out.area[t] = s;
    out.cx[t] = s > 0 ? sx / s : std::numeric_limits<double>::quiet_NaN();
    out.cy[t] = s > 0 ? sy / s : std::numeric_limits<double>::quiet_NaN();
  }
  return out;
}

}  // namespace vidfuse::data
