namespace Seg.Data;

/// <summary>What a dataset does with a sample whose files are unreadable or inconsistent (config <c>on_bad_sample</c>).</summary>
public enum BadSampleMode
{
    /// <summary>Throw a <see cref="BadSampleException"/> naming the file and the value at fault (the default).</summary>
    Error,

    /// <summary>Leave the sample out, count it in <see cref="BadSampleLog"/> and go on.</summary>
    Skip,
}
