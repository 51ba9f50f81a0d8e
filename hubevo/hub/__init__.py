"""Every huggingface_hub call of the project lives in this package (the Hub edge)."""
