"""CNNs as Flax Linen modules; each records its layer outputs (see layers.tap)."""

from cnnlab.models.registry import MODELS, create_model, create_model_from_config, model_fields

__all__ = ["MODELS", "create_model", "create_model_from_config", "model_fields"]
