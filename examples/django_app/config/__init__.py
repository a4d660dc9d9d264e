"""The example project's settings package: ``config``, as in most Django projects.

OTPflow's own configuration lives at ``otpflow.config``, so the two never clash.
"""
