"""CNNs as Flax Linen modules; each records its layer outputs (see layers.Taps)."""

from cnnlab.models.layers import layer_outputs
from cnnlab.models.registry import MODELS, create_model, create_model_from_config, model_fields

__all__ = ["layer_outputs", "MODELS", "create_model", "create_model_from_config", "model_fields"]
