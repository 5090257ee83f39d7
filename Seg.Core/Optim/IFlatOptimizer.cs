namespace Seg.Core.Optim;

/// <summary>An optimizer whose parameters and gradients live in one <see cref="FlatParameters"/> buffer, so that
/// whole-gradient work (unscaling, clipping, all-reduce) can be one operation on <see cref="FlatParameters.Gradients"/>.</summary>
public interface IFlatOptimizer
{
    /// <summary>The buffer holding the optimizer's parameters and gradients.</summary>
    FlatParameters Flat { get; }
}
