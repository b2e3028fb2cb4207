"""ivr-engine: an expert-consultation telephony engine on top of Asterisk (ARI + AMI)."""

__version__ = "0.1.0"
