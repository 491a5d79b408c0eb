"""The member agent: runs the slices' gateways in a member cluster and reports to the hub."""
