"""
Weight-free bring-up backend for simple colour/size/position instructions.

It grounds them with classical vision so the whole system runs, and gives real masks, before
any GPU weights.
"""
