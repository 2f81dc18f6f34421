"""GPU benchmarks: encoder inference and one MAE pretraining step in bf16, with sdpa (and flash attention when
installed), appended to benchmarks/RESULTS.md with the device name. Run on a machine with a CUDA GPU:

    python benchmarks/gpu.py

It takes about two minutes on one H100. The peak used for shares is a bf16 matmul measured in the same run.
"""

import importlib.util
import time

import torch

from run import RESULTS, encoder_flops, pretraining_flops  # benchmarks/run.py

from spectralgpt_hf import SpectralGPTConfig, SpectralGPTForPreTraining, SpectralGPTModel


def cuda_seconds(function, repeats: int = 10) -> float:
    function()
    torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(repeats):
        function()
    torch.cuda.synchronize()
    return (time.perf_counter() - start) / repeats


def matmul_peak() -> float:
    a = torch.randn(8192, 8192, device="cuda", dtype=torch.bfloat16)
    b = torch.randn(8192, 8192, device="cuda", dtype=torch.bfloat16)
    return 2 * 8192**3 / cuda_seconds(lambda: a @ b, 20) / 1e9


def main() -> None:
    if not torch.cuda.is_available():
        raise SystemExit("No CUDA device: run this on a GPU machine (CPU figures come from benchmarks/run.py).")
    peak = matmul_peak()
    attentions = ["sdpa"] + (["flash_attention_2"] if importlib.util.find_spec("flash_attn") else [])
    lines = [
        "",
        f"## GPU: {torch.cuda.get_device_name()} (torch {torch.__version__}, bf16)",
        "",
        f"Measured bf16 matmul peak (8192 x 8192): **{peak / 1000:.0f} TFLOP/s**.",
        "",
        "| model | attention | image | batch | images/s | TFLOP/s (share of peak) | peak memory (GB) |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for attention in attentions:
        for image_size in (96, 128):
            config = SpectralGPTConfig(image_size=image_size, attn_implementation=attention)
            model = SpectralGPTModel(config).to("cuda", torch.bfloat16).eval()
            for batch in (1, 8, 32, 128):
                pixel_values = torch.rand(batch, 12, image_size, image_size, device="cuda", dtype=torch.bfloat16)
                torch.cuda.reset_peak_memory_stats()
                with torch.inference_mode():
                    seconds = cuda_seconds(lambda: model(pixel_values))
                tflops = batch * encoder_flops(config, image_size) / seconds / 1e12
                lines.append(
                    f"| encoder | {attention} | {image_size} | {batch} | {batch / seconds:.0f} | "
                    f"{tflops:.1f} ({100 * tflops * 1000 / peak:.0f} %) | "
                    f"{torch.cuda.max_memory_allocated() / 1e9:.2f} |"
                )
        config = SpectralGPTConfig(image_size=128, attn_implementation=attention)
        model = SpectralGPTForPreTraining(config).to("cuda").train()
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, betas=(0.9, 0.95), fused=True)
        for batch in (8, 64):
            pixel_values = torch.rand(batch, 12, 128, 128, device="cuda")

            def step():
                with torch.autocast("cuda", dtype=torch.bfloat16):
                    loss = model(pixel_values).loss
                loss.backward()
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)

            torch.cuda.reset_peak_memory_stats()
            seconds = cuda_seconds(step)
            tflops = 3 * batch * pretraining_flops(config, 128) / seconds / 1e12
            lines.append(
                f"| MAE step (fp32 weights, bf16 autocast) | {attention} | 128 | {batch} | {batch / seconds:.0f} | "
                f"{tflops:.1f} ({100 * tflops * 1000 / peak:.0f} %) | {torch.cuda.max_memory_allocated() / 1e9:.2f} |"
            )
    with RESULTS.open("a") as results:
        results.write("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
