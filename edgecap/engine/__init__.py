"""The provider-neutral streaming engine: buffer, pacing, retry policy, rotation, sessions."""
