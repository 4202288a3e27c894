"""The only layer that talks to the host kernel (UML's os-Linux/)."""
