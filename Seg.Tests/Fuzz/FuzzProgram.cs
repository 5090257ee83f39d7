namespace Seg.Tests.Fuzz;

/// <summary>
/// Seg.Tests' entry point (the test SDK's generated one is switched off in the project): with
/// <c>fuzz-child</c> the assembly serves as the fuzz child process (<see cref="FuzzChild"/>); otherwise it does
/// nothing, as the generated one did.
/// </summary>
public static class FuzzProgram
{
    public static int Main(string[] args) =>
        args is [FuzzChild.Verb, ..] ? FuzzChild.Run(Console.In, Console.Out) : 0;
}
