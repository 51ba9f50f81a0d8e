"""hubevo: evolve language models on the Hugging Face Hub by merging, fine-tuning and selection."""

__version__ = "0.1.0"
