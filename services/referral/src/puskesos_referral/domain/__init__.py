"""Pure domain logic of the referral service: SLA calendar, assessment rules, the case lifecycle.

Nothing here does I/O; the clock and ids come in as parameters.
"""
