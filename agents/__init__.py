"""hero-gym trainers: GRPO, SDPO, Full-Demo and HERO over one trajectory format and one trainer base."""
