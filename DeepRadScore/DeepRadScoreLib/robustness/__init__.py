"""Feature robustness: perturbed copies of each case (``perturb``), their features through the
cohort extraction (``chain``) and the ICC of every feature across the copies (``icc``)."""
