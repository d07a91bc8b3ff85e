"""Speech providers: a pure protocol object per provider."""
