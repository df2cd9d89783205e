"""Fake (meta) kernels of the `ikd::` ops so they trace under torch.compile / FakeTensor and pass opcheck.

Imported by the loader right after the compiled extension registered the schemas. Outputs are always contiguous.
"""

import torch


@torch.library.register_fake("ikd::spectral_mix")
def _spectral_mix(x, source, lo, hi, lam, mode):
    return x.new_empty(x.shape)


@torch.library.register_fake("ikd::spectral_mix_shuffle")
def _spectral_mix_shuffle(x, perm, lo, hi, lam, mode):
    return x.new_empty(x.shape)


@torch.library.register_fake("ikd::spectral_mix_noise")
def _spectral_mix_noise(x, sigma, lo, hi, lam, mode, seed):
    return x.new_empty(x.shape)


@torch.library.register_fake("ikd::noise_spectrum")
def _noise_spectrum(sigma, channels, height, width, seed):
    return sigma.new_empty((sigma.shape[0], channels, height, width // 2 + 1), dtype=torch.complex64)


@torch.library.register_fake("ikd::adv_step")
def _adv_step(x_adv, x_clean, grad, momentum, step_size, eps, lo, hi, decay):
    return x_adv.new_empty(x_adv.shape), x_adv.new_empty(x_adv.shape)
