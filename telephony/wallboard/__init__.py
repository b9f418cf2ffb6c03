"""The supervisor's live wallboard.

``state`` keeps callers waiting and operators' states from the AMI listener's call facts
(pure), ``service`` adds the database's counters for the shift and the day and the incidents
past their dispatch target, and pushes the result to every open wallboard.
"""
