"""Host-side tools: uml_moo, uml_mconsole, mkimage, the default root builder."""
