"""Scheduler parity fixture: runs diffusers' own scheduler classes over a synthetic model.

genmint's schedulers (`model-runtime/src/scheduler/`) must visit the same timesteps, use the same
sigmas and land on the same final sample as diffusers. This script records, for every scheduler
genmint offers, a few realistic configs and step counts:

- the timesteps and sigmas diffusers computes,
- the latents after every step (for the short runs) and at the end,
- for the stochastic schedulers (ancestral Euler, LCM), the per-step noise they were fed (the
  Rust test feeds the same tensors, so the comparison is about the math, not about the random
  stream).

The "model" is a fixed function of the scaled sample and the timestep, so no weights are needed:
    output = 0.8 * scaled_sample + 0.2 * tanh(scaled_sample) + 0.01 * (t / 1000)
(read as epsilon or as v, whichever the config's prediction type says). It predicts most of the
noise, as a trained model does, so the denoised sample ends at a realistic size (a few units)
and the comparison is not dominated by the f32 spacing of large numbers.

Usage: python model-runtime/parity/schedulers.py  (writes
model-runtime/tests/fixtures/schedulers/parity.json)
"""

import json
import pathlib

import diffusers
import numpy as np
import torch
from diffusers import (
    DDIMScheduler,
    DPMSolverMultistepScheduler,
    EulerAncestralDiscreteScheduler,
    EulerDiscreteScheduler,
    LCMScheduler,
)
from diffusers.schedulers import scheduling_euler_ancestral_discrete as euler_a_module
from diffusers.schedulers import scheduling_lcm as lcm_module

OUT = pathlib.Path(__file__).resolve().parents[1] / "tests/fixtures/schedulers/parity.json"
SHAPE = (1, 4, 4, 4)
STEPS = (4, 20)

SD = {
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "beta_start": 0.00085,
    "num_train_timesteps": 1000,
    "set_alpha_to_one": False,
    "skip_prk_steps": True,
    "steps_offset": 1,
    "trained_betas": None,
    "clip_sample": False,
}
CONFIGS = {
    # runwayml/stable-diffusion-v1-5 scheduler_config.json as shipped: no timestep_spacing, so
    # each class falls back to its own default (leading for DDIM, linspace for the others).
    "sd15": {"_class_name": "PNDMScheduler", **SD},
    # The same with leading spacing named, as diffusers recommends for SD 1.5.
    "sd15_leading": {"_class_name": "PNDMScheduler", **SD, "timestep_spacing": "leading"},
    # SD 2.1 style: v-prediction.
    "sd21_v": {"_class_name": "DDIMScheduler", **SD, "prediction_type": "v_prediction", "timestep_spacing": "leading"},
    # SD Turbo: trailing spacing.
    "turbo_trailing": {
        "_class_name": "EulerDiscreteScheduler",
        **SD,
        "interpolation_type": "linear",
        "prediction_type": "epsilon",
        "timestep_spacing": "trailing",
        "use_karras_sigmas": False,
    },
    # An LCM-distilled model's config (LCMScheduler, set_alpha_to_one) with a shorter
    # distillation schedule than the default 50, so original_inference_steps is exercised; the
    # other schedulers ignore the LCM-only keys, as diffusers does.
    "lcm_origin25": {
        "_class_name": "LCMScheduler",
        **SD,
        "set_alpha_to_one": True,
        "original_inference_steps": 25,
        "timestep_scaling": 10.0,
        "timestep_spacing": "leading",
    },
}
SCHEDULERS = {
    "ddim": (DDIMScheduler, {}),
    "euler": (EulerDiscreteScheduler, {}),
    "euler_a": (EulerAncestralDiscreteScheduler, {}),
    "dpmpp_2m": (DPMSolverMultistepScheduler, {"algorithm_type": "dpmsolver++", "solver_order": 2}),
    "dpmpp_2m_karras": (
        DPMSolverMultistepScheduler,
        {"algorithm_type": "dpmsolver++", "solver_order": 2, "use_karras_sigmas": True},
    ),
    "lcm": (LCMScheduler, {}),
}


def model(scaled, t):
    return 0.8 * scaled + 0.2 * torch.tanh(scaled) + 0.01 * (t.to(torch.float32) / 1000)


def floats(tensor):
    return [float(v) for v in tensor.flatten().tolist()]


class FedNoise:
    """Stands in for diffusers' randn_tensor: hands out prepared per-step tensors, recording them."""

    def __init__(self, rng):
        self.rng = rng
        self.drawn = []

    def __call__(self, shape, generator=None, device=None, dtype=None, **_):
        noise = torch.from_numpy(self.rng.standard_normal(shape).astype(np.float32))
        self.drawn.append(floats(noise))
        return noise.to(dtype=dtype)


def run(name, config_name, steps, latents, rng):
    cls, extra = SCHEDULERS[name]
    scheduler = cls.from_config(CONFIGS[config_name], **extra)
    scheduler.set_timesteps(steps)
    fed = FedNoise(rng)
    euler_a_module.randn_tensor = fed
    lcm_module.randn_tensor = fed
    sample = latents * scheduler.init_noise_sigma
    samples = []
    for t in scheduler.timesteps:
        scaled = scheduler.scale_model_input(sample, t)
        output = model(scaled, t)
        if name == "ddim":
            sample = scheduler.step(output, t, sample, eta=0.0).prev_sample
        else:
            sample = scheduler.step(output, t, sample).prev_sample
        samples.append(floats(sample))
    sigmas = getattr(scheduler, "sigmas", None)
    case = {
        "scheduler": name,
        "config": config_name,
        "steps": steps,
        "timesteps": [float(t) for t in scheduler.timesteps.tolist()],
        "sigmas": None if sigmas is None or name == "ddim" else floats(sigmas),
        "init_noise_sigma": float(scheduler.init_noise_sigma),
        "final": samples[-1],
    }
    if steps <= 4:
        case["samples"] = samples
    if fed.drawn:
        case["noise"] = fed.drawn
    return case


def main():
    rng = np.random.default_rng(20261206)
    latents_np = rng.standard_normal(SHAPE).astype(np.float32)
    latents = torch.from_numpy(latents_np)
    cases = [
        run(name, config_name, steps, latents, rng)
        for name in SCHEDULERS
        for config_name in CONFIGS
        for steps in STEPS
    ]
    fixture = {
        "format": "genmint-scheduler-parity-v1",
        "generator": "model-runtime/parity/schedulers.py",
        "diffusers": diffusers.__version__,
        "torch": torch.__version__,
        "model": "output = 0.8 * x + 0.2 * tanh(x) + 0.01 * (t / 1000), x = scale_model_input(sample, t)",
        "shape": list(SHAPE),
        "latents": floats(latents),
        "configs": CONFIGS,
        "cases": cases,
    }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(fixture, separators=(",", ":")) + "\n")
    print(f"wrote {OUT} ({OUT.stat().st_size} bytes, {len(cases)} cases)")


if __name__ == "__main__":
    main()
