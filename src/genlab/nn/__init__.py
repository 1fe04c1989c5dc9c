"""Building blocks shared by every model: MLPs and conv encoders/decoders sized from the data shape."""
from .blocks import MLP, ConcatOutputs, ConvDecoder, ConvEncoder, conv_plan, default_hidden, make_decoder, make_encoder, resolve_arch

__all__ = ["MLP", "ConcatOutputs", "ConvEncoder", "ConvDecoder", "conv_plan", "default_hidden", "make_encoder", "make_decoder", "resolve_arch"]
