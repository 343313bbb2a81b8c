"""Training: D_traj traces (``traces`` records them, ``trace_store`` keeps them as one Hugging Face
dataset, ``trace_sft`` serves them to trl), SFT with trl (``sft``), the tiny VLM's examples and
training (``tiny_data``, ``train_tiny``) and the click segmenter's training (``clicknet``)."""
