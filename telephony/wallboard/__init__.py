"""The supervisor's live wallboard.

``state`` keeps callers waiting and operators' states, ``counters`` the current shift's and
day's figures, both from the AMI listener's call facts (pure); ``service`` seeds them from the
database (on a cluster node, with the other nodes' calls as their rows change), adds the
incidents past their dispatch target and the call-back backlog, and pushes
the result to every open wallboard.
"""
