using System.Buffers.Binary;
using System.Numerics;
using System.Text;

namespace Seg.Models.Weights;

/// <summary>A Python global named by a pickle (<c>module.name</c>), kept as data, never resolved to code.</summary>
internal sealed record PickleGlobal(string Module, string Name)
{
    public override string ToString() => $"{Module}.{Name}";
}

/// <summary>A pickled Python dict (insertion order kept).</summary>
internal sealed class PickleDict
{
    public List<KeyValuePair<object?, object?>> Items { get; } = [];
}

/// <summary>A reference to one storage of a PyTorch zip archive (<c>data/{Key}</c>), from a persistent id, with the
/// element count the id declares (when it does).</summary>
internal sealed record StorageRef(string Key, PickleGlobal StorageType, long? Numel);

/// <summary>What <c>torch._utils._rebuild_tensor_v2</c> would build: a strided view of a storage.</summary>
internal sealed record TensorRecord(StorageRef Storage, long Offset, long[] Size, long[] Stride);

/// <summary>
/// A pickle interpreter that knows only the data opcodes PyTorch's <c>torch.save</c> emits (protocols 2–5) and a
/// short list of globals (<see cref="Allowed"/>): <c>collections.OrderedDict</c>, the tensor-rebuild functions and
/// the storage types. It never imports or calls anything: rebuild calls become <see cref="TensorRecord"/> values,
/// and any other global, or an opcode outside the list, stops reading with an <see cref="InvalidDataException"/>
/// naming the file. This is what makes reading an untrusted .pth safe.
/// </summary>
internal sealed class RestrictedUnpickler
{
    /// <summary>Storage type names (<c>torch.FloatStorage</c>, …) accepted in persistent ids.</summary>
    public static readonly IReadOnlySet<string> StorageTypes = new HashSet<string>
    {
        "DoubleStorage", "FloatStorage", "HalfStorage", "BFloat16Storage", "LongStorage", "IntStorage",
        "ShortStorage", "CharStorage", "ByteStorage", "BoolStorage",
    };

    static readonly HashSet<string> Allowed =
    [
        "collections.OrderedDict", "torch._utils._rebuild_tensor_v2", "torch._utils._rebuild_parameter",
        "torch._utils._rebuild_parameter_with_state",
    ];

    /// <summary>Containers nested deeper than this (or MARKs open at once) are refused: torch.save's state dicts
    /// nest about five deep, and a bound keeps whatever walks the result off a stack overflow.</summary>
    public const int MaxDepth = 100;

    /// <summary>Opcode names, for messages (also of the opcodes this reader refuses).</summary>
    static readonly Dictionary<byte, string> Names = new()
    {
        [0x80] = "PROTO", [0x95] = "FRAME", [(byte)'.'] = "STOP", [(byte)'('] = "MARK", [(byte)'}'] = "EMPTY_DICT",
        [(byte)']'] = "EMPTY_LIST", [(byte)')'] = "EMPTY_TUPLE", [(byte)'N'] = "NONE", [0x88] = "NEWTRUE", [0x89] = "NEWFALSE",
        [(byte)'J'] = "BININT", [(byte)'K'] = "BININT1", [(byte)'M'] = "BININT2", [0x8a] = "LONG1", [0x8b] = "LONG4",
        [(byte)'G'] = "BINFLOAT", [(byte)'X'] = "BINUNICODE", [0x8c] = "SHORT_BINUNICODE", [0x8d] = "BINUNICODE8",
        [(byte)'T'] = "BINSTRING", [(byte)'U'] = "SHORT_BINSTRING", [(byte)'B'] = "BINBYTES", [(byte)'C'] = "SHORT_BINBYTES",
        [0x8e] = "BINBYTES8", [0x96] = "BYTEARRAY8", [(byte)'q'] = "BINPUT", [(byte)'r'] = "LONG_BINPUT", [0x94] = "MEMOIZE",
        [(byte)'h'] = "BINGET", [(byte)'j'] = "LONG_BINGET", [(byte)'0'] = "POP", [(byte)'1'] = "POP_MARK", [(byte)'2'] = "DUP",
        [(byte)'t'] = "TUPLE", [0x85] = "TUPLE1", [0x86] = "TUPLE2", [0x87] = "TUPLE3", [(byte)'l'] = "LIST", [(byte)'a'] = "APPEND",
        [(byte)'e'] = "APPENDS", [(byte)'s'] = "SETITEM", [(byte)'u'] = "SETITEMS", [(byte)'c'] = "GLOBAL", [0x93] = "STACK_GLOBAL",
        [(byte)'Q'] = "BINPERSID", [(byte)'R'] = "REDUCE", [(byte)'b'] = "BUILD", [(byte)'i'] = "INST", [(byte)'o'] = "OBJ",
        [0x81] = "NEWOBJ", [0x92] = "NEWOBJ_EX", [0x82] = "EXT1", [0x83] = "EXT2", [0x84] = "EXT4", [(byte)'P'] = "PERSID",
        [(byte)'I'] = "INT", [(byte)'L'] = "LONG", [(byte)'F'] = "FLOAT", [(byte)'S'] = "STRING", [(byte)'V'] = "UNICODE",
        [(byte)'g'] = "GET", [(byte)'p'] = "PUT", [(byte)'d'] = "DICT", [0x8f] = "EMPTY_SET", [0x90] = "ADDITEMS",
        [0x91] = "FROZENSET", [0x97] = "NEXT_BUFFER", [0x98] = "READONLY_BUFFER",
    };

    readonly byte[] data;
    readonly string source;
    int pos;
    int opStart;
    byte op;
    readonly List<object?> stack = [];
    readonly Stack<int> marks = new();
    readonly Dictionary<long, object?> memo = [];
    readonly Dictionary<object, int> depths = new(ReferenceEqualityComparer.Instance);

    RestrictedUnpickler(byte[] data, string source)
    {
        this.data = data;
        this.source = source;
    }

    /// <summary>Interprets <paramref name="data"/> and returns the top object.</summary>
    /// <param name="data">The pickle bytes (a <c>.pth</c> file's <c>data.pkl</c>).</param>
    /// <param name="source">File (and entry) name used in error messages.</param>
    public static object? Load(byte[] data, string source) => new RestrictedUnpickler(data, source).Run();

    static string OpName(byte op) => Names.TryGetValue(op, out var n) ? n : $"0x{op:x2}";

    /// <summary>"path (entry): pickle opcode BINUNICODE at byte 312: what."</summary>
    InvalidDataException Fail(string what) => new($"{source}: pickle opcode {OpName(op)} at byte {opStart}: {what}.");

    /// <summary>"path (entry): pickle opcode BINUNICODE at byte 312 declares 4294967295 bytes, 2011 remain."</summary>
    InvalidDataException FailOp(string predicate) => new($"{source}: pickle opcode {OpName(op)} at byte {opStart} {predicate}.");

    object? Run()
    {
        while (true)
        {
            if (pos >= data.Length) throw new InvalidDataException($"{source}: pickle ends at byte {data.Length} without STOP.");
            opStart = pos;
            op = data[pos++];
            switch (op)
            {
                case 0x80: Take(1); break;                                                          // PROTO
                case 0x95: Length(8); break;                                                        // FRAME: its length is only checked
                case (byte)'.': return Pop();                                                       // STOP
                case (byte)'(':                                                                     // MARK
                    if (marks.Count >= MaxDepth) throw Fail($"more than {MaxDepth} MARKs open at once");
                    marks.Push(stack.Count);
                    break;
                case (byte)'}': stack.Add(new PickleDict()); break;                                 // EMPTY_DICT
                case (byte)']': stack.Add(new List<object?>()); break;                              // EMPTY_LIST
                case (byte)')': stack.Add(Array.Empty<object?>()); break;                           // EMPTY_TUPLE
                case (byte)'N': stack.Add(null); break;                                             // NONE
                case 0x88: stack.Add(true); break;                                                  // NEWTRUE
                case 0x89: stack.Add(false); break;                                                 // NEWFALSE
                case (byte)'J': stack.Add((long)BinaryPrimitives.ReadInt32LittleEndian(Take(4))); break;  // BININT
                case (byte)'K': stack.Add((long)Take(1)[0]); break;                                        // BININT1
                case (byte)'M': stack.Add((long)BinaryPrimitives.ReadUInt16LittleEndian(Take(2))); break; // BININT2
                case 0x8a: stack.Add(Long(Length(1))); break;                                      // LONG1
                case 0x8b: stack.Add(Long(Length(4, signed: true))); break;                        // LONG4
                case (byte)'G': stack.Add(BinaryPrimitives.ReadDoubleBigEndian(Take(8))); break;    // BINFLOAT
                case (byte)'X': stack.Add(Utf8(Length(4))); break;                                 // BINUNICODE
                case 0x8c: stack.Add(Utf8(Length(1))); break;                                      // SHORT_BINUNICODE
                case 0x8d: stack.Add(Utf8(Length(8))); break;                                      // BINUNICODE8
                case (byte)'T': stack.Add(Latin1(Length(4, signed: true))); break;                 // BINSTRING
                case (byte)'U': stack.Add(Latin1(Length(1))); break;                               // SHORT_BINSTRING
                case (byte)'B': stack.Add(Take(Length(4)).ToArray()); break;                       // BINBYTES
                case (byte)'C': stack.Add(Take(Length(1)).ToArray()); break;                       // SHORT_BINBYTES
                case 0x8e: stack.Add(Take(Length(8)).ToArray()); break;                            // BINBYTES8
                case (byte)'q': memo[Take(1)[0]] = Peek(); break;                                   // BINPUT
                case (byte)'r': memo[BinaryPrimitives.ReadUInt32LittleEndian(Take(4))] = Peek(); break;    // LONG_BINPUT
                case 0x94: memo[memo.Count] = Peek(); break;                                        // MEMOIZE
                case (byte)'h': stack.Add(Memo(Take(1)[0])); break;                                 // BINGET
                case (byte)'j': stack.Add(Memo(BinaryPrimitives.ReadUInt32LittleEndian(Take(4)))); break;  // LONG_BINGET
                case (byte)'0': Pop(); break;                                                       // POP
                case (byte)'1': PopMark(); break;                                                   // POP_MARK
                case (byte)'2': stack.Add(Peek()); break;                                           // DUP
                case (byte)'t': stack.Add(Nest(PopMark().ToArray())); break;                        // TUPLE
                case 0x85: stack.Add(Nest(new[] { Pop() })); break;                                 // TUPLE1
                case 0x86: { var b = Pop(); var a = Pop(); stack.Add(Nest(new[] { a, b })); break; } // TUPLE2
                case 0x87: { var c = Pop(); var b = Pop(); var a = Pop(); stack.Add(Nest(new[] { a, b, c })); break; } // TUPLE3
                case (byte)'l': stack.Add(Nest(PopMark())); break;                                  // LIST
                case (byte)'a': { var v = Pop(); var list = AsList(Peek()); list.Add(v); Deepen(list, v); break; } // APPEND
                case (byte)'e': { var items = PopMark(); var list = AsList(Peek()); list.AddRange(items); foreach (var v in items) Deepen(list, v); break; } // APPENDS
                case (byte)'s': { var v = Pop(); var k = Pop(); var d = AsDict(Peek()); d.Items.Add(new(k, v)); Deepen(d, k); Deepen(d, v); break; } // SETITEM
                case (byte)'u': SetItems(PopMark()); break;                                         // SETITEMS
                case (byte)'c': stack.Add(Global(Line(), Line())); break;                           // GLOBAL
                case 0x93: { var name = Pop(); var module = Pop(); stack.Add(Global(AsString(module), AsString(name))); break; } // STACK_GLOBAL
                case (byte)'Q': stack.Add(PersistentLoad(Pop())); break;                            // BINPERSID
                case (byte)'R': { var args = Pop(); var fn = Pop(); stack.Add(Reduce(fn, args)); break; }  // REDUCE
                case (byte)'b': { var state = Pop(); Build(Peek(), state); break; }                 // BUILD
                default:
                    throw Fail($"opcode 0x{op:x2} ('{(char)op}') is not allowed in a state_dict file");
            }
        }
    }

    /// <summary>A length operand of <paramref name="width"/> bytes, checked against the bytes that remain.</summary>
    int Length(int width, bool signed = false)
    {
        var span = Take(width);
        long n = width switch
        {
            1 => span[0],
            4 when signed => BinaryPrimitives.ReadInt32LittleEndian(span),
            4 => BinaryPrimitives.ReadUInt32LittleEndian(span),
            _ => (long)Math.Min(BinaryPrimitives.ReadUInt64LittleEndian(span), long.MaxValue),
        };
        ulong raw = width == 8 ? BinaryPrimitives.ReadUInt64LittleEndian(span) : (ulong)n;
        int remain = data.Length - pos;
        if (n < 0) throw FailOp($"declares a negative length, {n}");
        if (raw > (ulong)remain) throw FailOp($"declares {raw} bytes, {remain} remain");
        return (int)n;
    }

    ReadOnlySpan<byte> Take(int n)
    {
        if (n > data.Length - pos) throw FailOp($"needs {n} bytes, {data.Length - pos} remain");
        var span = data.AsSpan(pos, n);
        pos += n;
        return span;
    }

    string Utf8(int n) => Encoding.UTF8.GetString(Take(n));
    string Latin1(int n) => Encoding.Latin1.GetString(Take(n));

    string Line()
    {
        int end = Array.IndexOf(data, (byte)'\n', pos);
        if (end < 0) throw Fail("global name runs to the end of the pickle without a newline");
        var s = Encoding.ASCII.GetString(data, pos, end - pos);
        pos = end + 1;
        return s;
    }

    /// <summary>Records the nesting depth of a new container from its items.</summary>
    T Nest<T>(T container) where T : IEnumerable<object?>
    {
        foreach (var item in container) Deepen(container, item);
        if (!depths.ContainsKey(container)) depths[container] = 1;
        return container;
    }

    /// <summary>Raises <paramref name="container"/>'s recorded depth for a new <paramref name="item"/>.</summary>
    void Deepen(object container, object? item)
    {
        int d = 1 + (item is not null && depths.TryGetValue(item, out var di) ? di : 0);
        if (d > MaxDepth) throw Fail($"objects nest more than {MaxDepth} deep");
        if (!depths.TryGetValue(container, out var dc) || d > dc) depths[container] = d;
    }

    object Long(int n)
    {
        var v = new BigInteger(Take(n), isUnsigned: false, isBigEndian: false);
        return v >= long.MinValue && v <= long.MaxValue ? (object)(long)v : v; // (object): else the ?: types as BigInteger
    }

    object? Pop()
    {
        if (stack.Count == 0 || (marks.Count > 0 && marks.Peek() >= stack.Count)) throw Fail("pickle stack underflow");
        var v = stack[^1];
        stack.RemoveAt(stack.Count - 1);
        return v;
    }

    object? Peek() => stack.Count > 0 ? stack[^1] : throw Fail("pickle stack underflow");

    List<object?> PopMark()
    {
        if (marks.Count == 0) throw Fail("pickle has no MARK");
        int m = marks.Pop();
        var items = stack.GetRange(m, stack.Count - m);
        stack.RemoveRange(m, stack.Count - m);
        return items;
    }

    object? Memo(long key) => memo.TryGetValue(key, out var v) ? v : throw Fail($"pickle memo key {key} is undefined");

    List<object?> AsList(object? o) => o as List<object?> ?? throw Fail("APPEND to something that is not a list");
    PickleDict AsDict(object? o) => o as PickleDict ?? throw Fail("SETITEM on something that is not a dict");
    string AsString(object? o) => o as string ?? throw Fail("global name is not a string");

    void SetItems(List<object?> items)
    {
        if (items.Count % 2 != 0) throw Fail("SETITEMS with an odd number of items");
        var dict = AsDict(Peek());
        for (int i = 0; i < items.Count; i += 2)
        {
            dict.Items.Add(new(items[i], items[i + 1]));
            Deepen(dict, items[i]);
            Deepen(dict, items[i + 1]);
        }
    }

    PickleGlobal Global(string module, string name)
    {
        var g = new PickleGlobal(module, name);
        bool ok = Allowed.Contains(g.ToString()) || (module == "torch" && StorageTypes.Contains(name));
        if (!ok)
            throw Fail($"refers to global '{g}', which a state_dict reader does not allow " +
                       "(only tensors, storages and OrderedDict are read; nothing in the file is executed)");
        return g;
    }

    StorageRef PersistentLoad(object? pid)
    {
        // torch.save writes ('storage', storage_type, key, location, numel).
        if (pid is not object?[] { Length: >= 3 } t || t[0] is not "storage" || t[1] is not PickleGlobal type || t[2] is not string key)
            throw Fail("unsupported persistent id (expected ('storage', type, key, location, numel))");
        if (type.Module != "torch" || !StorageTypes.Contains(type.Name)) throw Fail($"unsupported storage type '{type}'");
        return new StorageRef(key, type, t.Length >= 5 && t[4] is long numel ? numel : null);
    }

    object? Reduce(object? fn, object? args)
    {
        if (fn is not PickleGlobal g) throw Fail("REDUCE on something that is not an allowed global");
        var a = args as object?[] ?? throw Fail($"REDUCE {g} without an argument tuple");
        switch (g.ToString())
        {
            case "collections.OrderedDict":
                if (a.Length != 0) throw Fail("OrderedDict with constructor arguments");
                return new PickleDict();
            case "torch._utils._rebuild_tensor_v2":
                if (a.Length < 4 || a[0] is not StorageRef storage) throw Fail("malformed _rebuild_tensor_v2 arguments");
                return new TensorRecord(storage, AsLong(a[1]), Longs(a[2]), Longs(a[3]));
            case "torch._utils._rebuild_parameter":
            case "torch._utils._rebuild_parameter_with_state":
                if (a.Length < 1 || a[0] is not TensorRecord data) throw Fail($"malformed {g.Name} arguments");
                return data;
            default:
                throw Fail($"calling '{g}' is not allowed");
        }
    }

    void Build(object? target, object? state)
    {
        // OrderedDict state_dicts carry a `_metadata` attribute (module versions): irrelevant to the weights.
        if (target is PickleDict) return;
        throw Fail("BUILD (setting object state) is only allowed on OrderedDict");
    }

    long AsLong(object? o) => o is long l ? l : throw Fail("expected an integer in tensor metadata");
    long[] Longs(object? o) => o is object?[] t ? t.Select(AsLong).ToArray() : throw Fail("expected an integer tuple in tensor metadata");
}
