"""Loaders for generator families whose files hold no code accelkit can run directly.

* :mod:`accelkit.loaders.adapters`: output adapters (a dict, a tuple, a flat vector ->
  the NCHW image batch every runner expects);
* :mod:`accelkit.loaders.diffusers_vae`: the decoder of a diffusers ``AutoencoderKL``
  folder (``save_pretrained``), extra ``[vae]``;
* :mod:`accelkit.loaders.spandrel_sr`: super-resolution / restoration state_dicts
  (ESRGAN, Real-ESRGAN, SwinIR, ...) whose architecture spandrel detects, extra ``[sr]``.

Every module here imports torch (and its optional library) only when called, so
``import accelkit.loading`` stays light.
"""
