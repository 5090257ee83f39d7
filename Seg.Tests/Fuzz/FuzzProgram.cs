namespace Seg.Tests.Fuzz;

/// <summary>
/// Seg.Tests' entry point (the test SDK's generated one is switched off in the project): with
/// <c>fuzz-child</c> the assembly serves as the fuzz child process (<see cref="FuzzChild"/>), with
/// <c>mpi-child</c> as one rank of an mpirun job (<see cref="Seg.Tests.Distributed.MpiChild"/>); otherwise it does
/// nothing, as the generated one did.
/// </summary>
public static class FuzzProgram
{
    public static int Main(string[] args) =>
        args switch
        {
            [FuzzChild.Verb, ..] => FuzzChild.Run(Console.In, Console.Out),
            [Seg.Tests.Distributed.MpiChild.Verb, .. var rest] => Seg.Tests.Distributed.MpiChild.Run(rest),
            _ => 0,
        };
}
