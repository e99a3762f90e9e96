"""The portal watching itself: its own service, ``backend``, evaluated live (selfcheck) and
its built-in checks (builtin), the web's stress signal for the rate limiter (stress), and the
demo's targets (demo)."""
