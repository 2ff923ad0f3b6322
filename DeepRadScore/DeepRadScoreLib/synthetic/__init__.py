"""A synthetic chest-CT cohort with labels planted by documented image mechanisms: the demo's and
the tests' data where no patient data may be used. Nothing trained on it means anything clinically.
"""
