"""Audio capture: frames, the capture child process and its supervision.

Kept free of imports: the capture child (`edgecap.audio.child`) imports this package with
nothing but the standard library and alsaaudio on its path.
"""
