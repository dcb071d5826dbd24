"""The spendwatch stream worker: one Faust app, thin agents, pure maths."""
