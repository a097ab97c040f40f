"""Tree ensembles as arrays and ModelLens's exact TreeSHAP kernel over them."""
