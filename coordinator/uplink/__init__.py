"""A commune coordinator's part in its province's meetings: the uplink and the relayed meeting."""
