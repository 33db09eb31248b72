"""Model loading: encoders (bi-encoder towers) and their settings."""
