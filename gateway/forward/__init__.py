"""Forwarding live video to the supervision centre: commands, the policy that allows them, the
session table and its journal, and the pusher that drives a push protocol (:mod:`gateway.push`)."""
