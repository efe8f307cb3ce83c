"""DHIF-Net and the conversion of the authors' checkpoints."""
from .config import ModelConfig
from .convert import convert_checkpoint, convert_original_state_dict, infer_config, load_original_checkpoint
from .dhif_net import DHIFNet, FilterUNet, initial_estimate, spatial_factors

__all__ = ["DHIFNet", "FilterUNet", "ModelConfig", "initial_estimate", "spatial_factors", "convert_checkpoint",
           "convert_original_state_dict", "infer_config", "load_original_checkpoint"]
