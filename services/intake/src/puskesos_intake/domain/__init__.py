"""Pure domain logic of the intake service: households, complaints, case progress."""
