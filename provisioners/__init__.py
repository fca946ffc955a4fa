"""Host plugins (one per service) and the SSH transport they share.

Plugins arrive with the reconcile engine; their public surface will be ``provisioners.api``.
"""
