// The Python package's native module: the public C++ API (vidfuse/vidfuse.h), bound one to one.
// Tensors cross as the same LibTorch tensors on both sides (no copies); every call that decodes
// or computes releases the GIL. What makes it pleasant in Python (PIL / numpy inputs, the
// Dataset, keyword defaults) is the small pure-Python layer in vidfuse/__init__.py.
#include <pybind11/stl.h>
#include <torch/extension.h>
#include <vidfuse/vidfuse.h>

namespace py = pybind11;
using namespace vidfuse;

namespace {

using Release = py::call_guard<py::gil_scoped_release>;

PyObject* g_error = nullptr;        // vidfuse.Error(RuntimeError)
PyObject* g_input_error = nullptr;  // vidfuse.InputError(Error, ValueError)

void translate(std::exception_ptr p) {
  try {
    if (p) std::rethrow_exception(p);
  } catch (const InvalidArgument& e) {
    PyErr_SetString(g_input_error, e.what());
  } catch (const Error& e) {
    PyErr_SetString(g_error, e.what());
  } catch (const c10::Error& e) {
    // A LibTorch error that reached the API unwrapped: still a vidfuse.Error, without the C++
    // backtrace.
    PyErr_SetString(g_error, e.what_without_backtrace());
  }
}

py::dict to_dict(const ExtractionSummary& s) {
  py::dict d;
  d["manifest_videos"] = s.manifest_videos;
  d["shard_videos"] = s.shard_videos;
  d["done"] = s.done;
  d["skipped"] = s.skipped;
  d["failed"] = s.failed;
  d["not_attempted"] = s.not_attempted;
  d["frames"] = s.frames;
  d["seconds"] = s.seconds;
  d["videos_per_s"] = s.videos_per_s;
  d["loader_idle_fraction"] = s.loader_idle_fraction;
  d["model_seconds"] = s.model_seconds;
  d["stopped"] = s.stopped;
  d["write_error"] = s.write_error;
  d["stop_reason"] = s.stop_reason;
  d["device"] = s.device;
  d["store"] = s.store;
  d["failures_file"] = s.failures_file;
  return d;
}

}  // namespace

PYBIND11_MODULE(_C, m) {
  m.doc() = "vidfuse's native core (use the `vidfuse` package, not this module)";
  g_error = PyErr_NewException("vidfuse.Error", PyExc_RuntimeError, nullptr);
  py::object bases = py::make_tuple(py::handle(g_error), py::handle(PyExc_ValueError));
  g_input_error = PyErr_NewException("vidfuse.InputError", bases.ptr(), nullptr);
  m.attr("Error") = py::handle(g_error);
  m.attr("InputError") = py::handle(g_input_error);
  py::register_exception_translator(&translate);

  m.def(
      "resolve_device",
      [](const std::string& requested) {
        const DeviceChoice c = resolve_device(requested);
        return py::make_tuple(c.device, c.reason);
      },
      py::arg("requested") = "auto");

  // Images and videos.
  m.def("read_image", &read_image, py::arg("path"), Release());
  py::class_<FrameSampling>(m, "FrameSampling")
      .def(py::init<>())
      .def_readwrite("kind", &FrameSampling::kind)
      .def_readwrite("num_segments", &FrameSampling::num_segments)
      .def_readwrite("clip_len", &FrameSampling::clip_len)
      .def_readwrite("frame_interval", &FrameSampling::frame_interval)
      .def_readwrite("num_clips", &FrameSampling::num_clips)
      .def_readwrite("fps", &FrameSampling::fps)
      .def_readwrite("stack", &FrameSampling::stack)
      .def_readwrite("step", &FrameSampling::step)
      .def_readwrite("min_frames", &FrameSampling::min_frames)
      .def_readwrite("out_of_bound", &FrameSampling::out_of_bound);
  py::class_<VideoFrames>(m, "VideoFrames")
      .def_readonly("frames", &VideoFrames::frames)
      .def_readonly("indices", &VideoFrames::indices)
      .def_readonly("times", &VideoFrames::times)
      .def_readonly("num_groups", &VideoFrames::num_groups)
      .def_readonly("warnings", &VideoFrames::warnings);
  m.def("read_video", &read_video, py::arg("path"), py::arg("sampling"), Release());

  // The semantic stream.
  py::class_<SemanticExtractorOptions>(m, "SemanticExtractorOptions")
      .def(py::init<>())
      .def_readwrite("device", &SemanticExtractorOptions::device)
      .def_readwrite("dtype", &SemanticExtractorOptions::dtype)
      .def_readwrite("height", &SemanticExtractorOptions::height)
      .def_readwrite("width", &SemanticExtractorOptions::width)
      .def_readwrite("batch", &SemanticExtractorOptions::batch);
  py::class_<SemanticExtractor>(m, "SemanticExtractor")
      .def(py::init<const std::string&, SemanticExtractorOptions>(), py::arg("weights"),
           py::arg("options"), Release())
      .def(
          "extract",
          [](const SemanticExtractor& x, const std::vector<at::Tensor>& images) {
            SemanticFeatures f;
            {
              py::gil_scoped_release release;
              f = x(images);
            }
            return py::make_tuple(f.patch_tokens, f.cls);
          },
          py::arg("images"))
      .def_property_readonly("feature_dim", &SemanticExtractor::feature_dim)
      .def_property_readonly("patch_size", &SemanticExtractor::patch_size)
      .def_property_readonly("device", &SemanticExtractor::device)
      .def_property_readonly("weights", &SemanticExtractor::weights);

  // The motion stream.
  py::class_<MotionExtractorOptions>(m, "MotionExtractorOptions")
      .def(py::init<>())
      .def_readwrite("device", &MotionExtractorOptions::device)
      .def_readwrite("dtype", &MotionExtractorOptions::dtype)
      .def_readwrite("short_side", &MotionExtractorOptions::short_side)
      .def_readwrite("crop", &MotionExtractorOptions::crop)
      .def_readwrite("fps", &MotionExtractorOptions::fps)
      .def_readwrite("clip", &MotionExtractorOptions::clip);
  auto motion_dict = [](const MotionFeatures& f) {
    py::dict d;
    d["mixed_5c"] = f.mixed_5c;
    d["features"] = f.features;
    d["logits"] = f.logits;
    d["logits_mean"] = f.logits_mean;
    return d;
  };
  py::class_<MotionExtractor>(m, "MotionExtractor")
      .def(py::init<const std::string&, MotionExtractorOptions>(), py::arg("weights"),
           py::arg("options"), Release())
      .def(
          "clip",
          [motion_dict](const MotionExtractor& x, const at::Tensor& frames) {
            MotionFeatures f;
            {
              py::gil_scoped_release release;
              f = x(frames);
            }
            return motion_dict(f);
          },
          py::arg("frames"))
      .def(
          "video",
          [motion_dict](const MotionExtractor& x, const std::string& path) {
            MotionFeatures f;
            {
              py::gil_scoped_release release;
              f = x.video(path);
            }
            return motion_dict(f);
          },
          py::arg("path"))
      .def(
          "top_k",
          [](const MotionExtractor& x, const at::Tensor& logits, int64_t k) {
            py::list rows;
            for (const auto& row : x.top_k(logits, k)) {
              py::list r;
              for (const auto& c : row) r.append(py::make_tuple(c.name, c.score, c.index));
              rows.append(r);
            }
            return rows;
          },
          py::arg("logits"), py::arg("k") = 5)
      .def_property_readonly("feature_dim", &MotionExtractor::feature_dim)
      .def_property_readonly("num_classes", &MotionExtractor::num_classes)
      .def_property_readonly("in_channels", &MotionExtractor::in_channels)
      .def_property_readonly("class_names", &MotionExtractor::class_names)
      .def_property_readonly("device", &MotionExtractor::device);
  m.def("kinetics400_class_names", &kinetics400_class_names);

  // Extraction.
  py::class_<ExtractionOptions>(m, "ExtractionOptions")
      .def(py::init<>())
      .def_readwrite("manifest", &ExtractionOptions::manifest)
      .def_readwrite("videos_dir", &ExtractionOptions::videos_dir)
      .def_readwrite("store", &ExtractionOptions::store)
      .def_readwrite("recipe_json", &ExtractionOptions::recipe_json)
      .def_readwrite("device", &ExtractionOptions::device)
      .def_readwrite("compute_dtype", &ExtractionOptions::compute_dtype)
      .def_readwrite("shard_index", &ExtractionOptions::shard_index)
      .def_readwrite("shard_count", &ExtractionOptions::shard_count)
      .def_readwrite("workers", &ExtractionOptions::workers)
      .def_readwrite("prefetch", &ExtractionOptions::prefetch)
      .def_readwrite("semantic_batch", &ExtractionOptions::semantic_batch)
      .def_readwrite("motion_batch", &ExtractionOptions::motion_batch)
      .def_readwrite("write_npy", &ExtractionOptions::write_npy)
      .def_readwrite("progress", &ExtractionOptions::progress)
      .def_readwrite("quiet", &ExtractionOptions::quiet);
  m.def(
      "extract",
      [](const ExtractionOptions& o) {
        ExtractionSummary s;
        {
          py::gil_scoped_release release;
          s = extract(o);
        }
        return to_dict(s);
      },
      py::arg("options"));

  // The feature store.
  py::class_<FeatureStoreReader>(m, "FeatureStoreReader")
      .def(py::init<const std::string&, const std::string&, const std::string&, bool, bool>(),
           py::arg("store"), py::arg("manifest"), py::arg("videos_dir") = "",
           py::arg("semantic") = true, py::arg("motion") = true, Release())
      .def("__len__", &FeatureStoreReader::size)
      .def("get", &FeatureStoreReader::get, py::arg("index"), Release())
      .def("label", &FeatureStoreReader::label, py::arg("index"))
      .def("id", &FeatureStoreReader::id, py::arg("index"))
      .def_property_readonly("class_names", &FeatureStoreReader::class_names)
      .def_property_readonly("missing", &FeatureStoreReader::missing);

  // Trained models.
  py::class_<ClassifierOptions>(m, "ClassifierOptions")
      .def(py::init<>())
      .def_readwrite("device", &ClassifierOptions::device)
      .def_readwrite("store", &ClassifierOptions::store)
      .def_readwrite("dinov3", &ClassifierOptions::dinov3)
      .def_readwrite("i3d", &ClassifierOptions::i3d);
  py::class_<Classifier>(m, "Classifier")
      .def(py::init<const std::string&, ClassifierOptions>(), py::arg("checkpoint"),
           py::arg("options"), Release())
      .def("logits", &Classifier::logits, py::arg("features"), Release())
      .def(
          "predict",
          [](const Classifier& c, const std::vector<std::string>& videos, int64_t k) {
            std::vector<Prediction> predictions;
            {
              py::gil_scoped_release release;
              predictions = c.predict(videos, k);
            }
            py::list out;
            for (const auto& p : predictions) {
              py::dict d;
              d["video"] = p.video;
              py::list top;
              for (const auto& s : p.top) top.append(py::make_tuple(s.name, s.score, s.index));
              d["top"] = top;
              d["error"] = p.error.empty() ? py::object(py::none()) : py::str(p.error);
              out.append(d);
            }
            return out;
          },
          py::arg("videos"), py::arg("k") = 5)
      .def_property_readonly("class_names", &Classifier::class_names)
      .def_property_readonly("num_classes", &Classifier::num_classes)
      .def_property_readonly("arch", &Classifier::arch)
      .def_property_readonly("device", &Classifier::device);
}
