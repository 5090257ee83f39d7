using System.Runtime.InteropServices;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Seg.Core.Optim;

/// <summary>
/// Parameters gathered into one flat buffer, so that an optimizer updates all of them with a few tensor operations
/// instead of a few per parameter (what PyTorch's <c>foreach</c> optimizers do with their multi-tensor kernels).
/// Each parameter becomes a view of <see cref="Values"/> (<c>set_</c>), and its gradient a view of
/// <see cref="Gradients"/>; backward then accumulates into the flat gradient in place, as it accumulates into any
/// existing gradient.
/// </summary>
/// <remarks>
/// <para>On a small model a step is bound by the cost of launching operations, not by arithmetic: TorchSharp's
/// AdamW issues about nine operations per parameter tensor, so a UNet with 60 tensors spends some 540 launches on
/// its update. Over the flat buffers the update takes nine, <see cref="ZeroGrad"/> one, and clipping three.</para>
/// <para>Gradients are never <c>null</c> here: a parameter that took no part in a step has a zero gradient and is
/// still updated (weight decay, moment decay), as PyTorch's optimizers do after <c>zero_grad(set_to_none=False)</c>.
/// A gradient that something else replaced (<c>module.zero_grad()</c> setting it to none, then backward allocating
/// a new one) is copied back into the flat buffer by <see cref="Reattach"/>.</para>
/// </remarks>
public sealed class FlatParameters : IDisposable
{
    readonly Parameter[] parameters;
    readonly long[] offsets, sizes;
    readonly Tensor[] gradientViews;
    readonly IntPtr[] gradientImpls;

    /// <summary>All parameters' values, one after the other in the order given.</summary>
    public Tensor Values { get; }

    /// <summary>All parameters' gradients, laid out as <see cref="Values"/>.</summary>
    public Tensor Gradients { get; }

    /// <summary>The parameters, in buffer order.</summary>
    public IReadOnlyList<Parameter> Parameters => parameters;

    /// <summary>Why <paramref name="parameters"/> cannot share one buffer, or null when they can: it needs at least
    /// one parameter, all of one floating-point dtype, on one device, each requiring a gradient, none twice.</summary>
    public static string? Problem(IReadOnlyList<Parameter> parameters)
    {
        if (parameters.Count == 0) return "there are no parameters";
        var (dtype, device) = (parameters[0].dtype, parameters[0].device.ToString());
        if (!parameters[0].is_floating_point()) return $"parameter 0 is {dtype}, not floating point";
        var seen = new HashSet<IntPtr>();
        for (var i = 0; i < parameters.Count; i++)
        {
            var p = parameters[i];
            if (p.dtype != dtype || p.device.ToString() != device) return $"parameter {i} is {p.dtype} on {p.device}, parameter 0 {dtype} on {device}";
            if (!p.requires_grad) return $"parameter {i} does not require a gradient";
            if (!seen.Add(Impl(p))) return $"parameter {i} appears twice";
        }
        return null;
    }

    /// <summary>Moves <paramref name="parameters"/> into one buffer (their values and any gradients are kept).</summary>
    /// <exception cref="ArgumentException">The parameters cannot share one buffer (<see cref="Problem"/>).</exception>
    public FlatParameters(IEnumerable<Parameter> parameters)
    {
        this.parameters = parameters.ToArray();
        if (Problem(this.parameters) is { } problem) throw new ArgumentException($"cannot flatten these parameters: {problem}", nameof(parameters));
        var n = this.parameters.Length;
        (offsets, sizes, gradientViews, gradientImpls) = (new long[n], new long[n], new Tensor[n], new IntPtr[n]);
        long total = 0;
        for (var i = 0; i < n; i++)
        {
            (offsets[i], sizes[i]) = (total, this.parameters[i].numel());
            total += sizes[i];
        }
        var first = this.parameters[0];
        Values = empty(total, first.dtype, first.device).DetachFromDisposeScope();
        Gradients = zeros(total, first.dtype, first.device).DetachFromDisposeScope();
        using var noGrad = no_grad();
        for (var i = 0; i < n; i++)
        {
            var p = this.parameters[i];
            using (var values = View(Values, i))
            {
                values.copy_(p);
                p.set_(values);
            }
            gradientViews[i] = View(Gradients, i).DetachFromDisposeScope();
            using (var grad = p.grad)
                if (grad is not null) gradientViews[i].copy_(grad);
            p.grad = gradientViews[i];
            gradientImpls[i] = Impl(gradientViews[i]);
        }
    }

    /// <summary>Parameter <paramref name="index"/>'s slice of a buffer laid out as <see cref="Values"/>, in the
    /// parameter's shape.</summary>
    public Tensor View(Tensor flat, int index) => flat.narrow(0, offsets[index], sizes[index]).view(parameters[index].shape);

    /// <summary>Sets every gradient to zero: one operation (after <see cref="Reattach"/>, so that a gradient
    /// something else put in place is cleared too, as TorchSharp's <c>zero_grad</c> clears it).</summary>
    public void ZeroGrad()
    {
        Reattach();
        Gradients.zero_();
    }

    /// <summary>Puts back into the flat buffer any gradient that was replaced or removed since the last call (a
    /// removed one counts as zero). Everything here that reads or writes <see cref="Gradients"/> calls it first.
    /// Cheap when nothing changed: one handle read per parameter.</summary>
    public void Reattach()
    {
        using var noGrad = no_grad();
        for (var i = 0; i < parameters.Length; i++)
        {
            var grad = parameters[i].grad;
            if (grad is null)
            {
                gradientViews[i].zero_();
                parameters[i].grad = gradientViews[i];
            }
            else if (Impl(grad) == gradientImpls[i]) grad.Dispose();
            else parameters[i].grad = Adopt(grad, gradientViews[i]);
        }
    }

    /// <summary><paramref name="view"/> holding <paramref name="current"/>'s values: a tensor that stands where one
    /// of this buffer's views belongs is copied into the view and disposed; the view itself is returned as it is.</summary>
    internal static Tensor Adopt(Tensor current, Tensor view)
    {
        if (ReferenceEquals(current, view)) return view;
        using (no_grad()) view.copy_(current);
        current.Dispose();
        return view;
    }

    /// <summary>Multiplies all gradients by <c>min(1, maxNorm / (‖g‖₂ + 1e-6))</c>, ‖g‖₂ over all of them, as
    /// <c>torch.nn.utils.clip_grad_norm_</c>; returns the norm before clipping (a device scalar).</summary>
    public Tensor ClipGradNorm(double maxNorm)
    {
        Reattach();
        using var noGrad = no_grad();
        var norm = Gradients.norm();
        using var coefficient = (maxNorm / (norm + 1e-6)).clamp_max(1.0);
        Gradients.mul_(coefficient);
        return norm;
    }

    /// <summary>Frees the views this object holds; the buffers stay alive while the parameters use them.</summary>
    public void Dispose()
    {
        foreach (var view in gradientViews) view?.Dispose();
        Values.Dispose();
        Gradients.Dispose();
    }

    // A TorchSharp tensor handle points at an at::Tensor, whose only field is its TensorImpl pointer: the same
    // TensorImpl means the same tensor, however many managed wrappers were made of it.
    static IntPtr Impl(Tensor tensor) => Marshal.ReadIntPtr(tensor.Handle);
}
