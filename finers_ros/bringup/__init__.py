"""Weight-free bring-up backend: grounds simple colour/size/position instructions with
classical vision so the whole system runs, and gives real masks, before any GPU weights."""
