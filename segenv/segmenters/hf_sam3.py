"""The transformers SAM 3 tracker adapter (``hf:`` folders of model_type ``sam3_tracker``).

SAM 3's tracker takes the same point / box / mask prompts as SAM 2 on the SAM 3 backbone, and its
transformers model (``Sam3TrackerModel``) has SAM 2's interface: ``get_image_embeddings`` once per
image (three feature levels), then the prompt encoder and mask decoder per click. So the adapter
is SAM 2's (:class:`~.hf_sam2.HFSam2Segmenter`: square input frame, per-axis coordinate scaling,
previous low-res logits fed back as ``input_masks``, the same multimask rule). What is SAM 3's own:

* the frame side is the prompt encoder's ``image_size`` (1008 for the released model);
* pixels are normalised with mean = std = 0.5 (``Sam3ImageProcessor``'s defaults) unless the
  folder's ``preprocessor_config.json`` says otherwise.

SAM 3's text-prompted model (``Sam3Model``, model_type ``sam3``) is not a click segmenter: given
as ``hf:``, it is refused with a message naming the tracker.
"""

from __future__ import annotations

from .hf_sam2 import HFSam2Segmenter

SAM3_MEAN_STD = ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))


class HFSam3TrackerSegmenter(HFSam2Segmenter):
    """transformers ``Sam3TrackerModel`` behind the segmenter protocol (args: :class:`~.hf_sam.HFSamSegmenter`)."""

    family = "sam3_tracker"
    default_norm = SAM3_MEAN_STD
