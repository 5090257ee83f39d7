namespace Seg.Tests.Train;

/// <summary>
/// Tests that compare runs bit for bit depend on torch's process-wide CPU generator, which any test running in
/// parallel may draw from: this collection runs on its own, after the parallel ones.
/// </summary>
[CollectionDefinition("Trainer", DisableParallelization = true)]
public sealed class TrainerCollection;
