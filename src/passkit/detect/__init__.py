"""Human detectors on onnxruntime: model registry, per-family pre/post-processing, views, ensemble and fusion."""
