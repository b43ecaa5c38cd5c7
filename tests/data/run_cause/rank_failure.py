"""Two gloo ranks on CPU; rank 1 feeds the model a wrong shape (torchrun --nproc_per_node 2)."""

import torch
import torch.distributed as dist

dist.init_process_group("gloo")
rank = dist.get_rank()
model = torch.nn.Linear(4, 2)
print(f"rank {rank}: step 1", flush=True)
model(torch.randn(3, 4 if rank == 0 else 5))
dist.barrier()
dist.destroy_process_group()
