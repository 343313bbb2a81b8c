"""Training: D_traj trace generation, SFT with trl, and the tiny VLM recipe."""
