using System.Buffers.Binary;
using System.Text;

namespace Seg.Tests.Fuzz;

/// <summary>Test-side pickle helpers: the length operands of a pickle (to edit), and a tiny writer for crafted pickles.</summary>
public static class PickleBytes
{
    /// <summary>Opcodes with a fixed-size length operand followed by that many bytes, and the operand's width.</summary>
    static readonly Dictionary<byte, (int Width, string Name)> Counted = new()
    {
        [0x8a] = (1, "LONG1"), [0x8b] = (4, "LONG4"), [(byte)'X'] = (4, "BINUNICODE"), [0x8c] = (1, "SHORT_BINUNICODE"),
        [0x8d] = (8, "BINUNICODE8"), [(byte)'T'] = (4, "BINSTRING"), [(byte)'U'] = (1, "SHORT_BINSTRING"),
        [(byte)'B'] = (4, "BINBYTES"), [(byte)'C'] = (1, "SHORT_BINBYTES"), [0x8e] = (8, "BINBYTES8"), [0x96] = (8, "BYTEARRAY8"),
    };

    /// <summary>Opcodes with a fixed operand (no payload after it).</summary>
    static readonly Dictionary<byte, (int Width, string Name)> Fixed = new()
    {
        [0x80] = (1, "PROTO"), [0x95] = (8, "FRAME"), [(byte)'J'] = (4, "BININT"), [(byte)'K'] = (1, "BININT1"),
        [(byte)'M'] = (2, "BININT2"), [(byte)'G'] = (8, "BINFLOAT"), [(byte)'q'] = (1, "BINPUT"), [(byte)'r'] = (4, "LONG_BINPUT"),
        [(byte)'h'] = (1, "BINGET"), [(byte)'j'] = (4, "LONG_BINGET"), [0x82] = (1, "EXT1"), [0x83] = (2, "EXT2"), [0x84] = (4, "EXT4"),
    };

    /// <summary>Every length, integer and memo operand of <paramref name="pickle"/>, walking its opcodes.</summary>
    public static List<LengthField> Fields(byte[] pickle)
    {
        var fields = new List<LengthField>();
        int pos = 0;
        while (pos < pickle.Length)
        {
            byte op = pickle[pos++];
            if (Counted.TryGetValue(op, out var c))
            {
                if (pos + c.Width > pickle.Length) break;
                fields.Add(new(pos, c.Width, false, c.Name));
                ulong n = c.Width switch
                {
                    1 => pickle[pos],
                    4 => BinaryPrimitives.ReadUInt32LittleEndian(pickle.AsSpan(pos)),
                    _ => BinaryPrimitives.ReadUInt64LittleEndian(pickle.AsSpan(pos)),
                };
                pos += c.Width + (int)Math.Min(n, (ulong)pickle.Length);
            }
            else if (Fixed.TryGetValue(op, out var f))
            {
                if (op is (byte)'J' or (byte)'K' or (byte)'M' or (byte)'q' or (byte)'r' or (byte)'h' or (byte)'j' or 0x95)
                    fields.Add(new(pos, f.Width, false, f.Name));
                pos += f.Width;
            }
            else if (op is (byte)'c' or (byte)'i') pos = SkipLines(pickle, pos, 2);
            else if (op is (byte)'I' or (byte)'L' or (byte)'S' or (byte)'V' or (byte)'F' or (byte)'P' or (byte)'g' or (byte)'p') pos = SkipLines(pickle, pos, 1);
            else if (op == (byte)'.') break;
        }
        return fields;
    }

    static int SkipLines(byte[] data, int pos, int lines)
    {
        for (int i = 0; i < lines && pos < data.Length; i++)
        {
            int end = Array.IndexOf(data, (byte)'\n', pos);
            pos = end < 0 ? data.Length : end + 1;
        }
        return pos;
    }

    /// <summary>A pickle writer for crafted files: raw opcodes with helpers for the common operands.</summary>
    public sealed class Writer
    {
        readonly MemoryStream ms = new();

        public Writer Proto(byte v = 2) => Op(0x80).Byte(v);
        public Writer Op(byte op) { ms.WriteByte(op); return this; }
        public Writer Op(char op) => Op((byte)op);
        public Writer Byte(byte b) { ms.WriteByte(b); return this; }
        public Writer U16(ushort v) { Span<byte> b = stackalloc byte[2]; BinaryPrimitives.WriteUInt16LittleEndian(b, v); ms.Write(b); return this; }
        public Writer U32(uint v) { Span<byte> b = stackalloc byte[4]; BinaryPrimitives.WriteUInt32LittleEndian(b, v); ms.Write(b); return this; }
        public Writer U64(ulong v) { Span<byte> b = stackalloc byte[8]; BinaryPrimitives.WriteUInt64LittleEndian(b, v); ms.Write(b); return this; }
        public Writer Raw(ReadOnlySpan<byte> bytes) { ms.Write(bytes); return this; }
        public Writer Raw(string ascii) => Raw(Encoding.ASCII.GetBytes(ascii));

        /// <summary>BINUNICODE with its true length.</summary>
        public Writer Str(string s) { var b = Encoding.UTF8.GetBytes(s); return Op('X').U32((uint)b.Length).Raw(b); }
        /// <summary>BININT.</summary>
        public Writer Int(int v) => Op('J').U32((uint)v);
        /// <summary>GLOBAL module\nname\n.</summary>
        public Writer Global(string module, string name) => Op('c').Raw($"{module}\n{name}\n");
        public Writer Mark() => Op('(');
        public Writer Tuple() => Op('t');
        public Writer Stop() => Op('.');

        /// <summary>A tuple of BININTs.</summary>
        public Writer IntTuple(params long[] values)
        {
            Mark();
            foreach (var v in values) Long(v);
            return Tuple();
        }

        /// <summary>An integer: BININT when it fits 32 bits, else LONG1 with 8 bytes.</summary>
        public Writer Long(long v) => v is >= int.MinValue and <= int.MaxValue ? Int((int)v) : Op(0x8a).Byte(8).U64((ulong)v);

        /// <summary>
        /// torch's rebuild of one tensor: <c>_rebuild_tensor_v2(('storage', torch.FloatStorage, key, 'cpu', numel),
        /// offset, size, stride, False, OrderedDict())</c>, as torch.save writes it.
        /// </summary>
        public Writer Tensor(string storageKey, long numel, long offset, long[] size, long[] stride, string storageType = "FloatStorage")
        {
            Global("torch._utils", "_rebuild_tensor_v2");
            Mark();
            Mark().Str("storage").Global("torch", storageType).Str(storageKey).Str("cpu").Long(numel).Tuple().Op('Q');
            Long(offset).IntTuple(size).IntTuple(stride).Op(0x89);
            Global("collections", "OrderedDict").Op(')').Op('R');
            return Tuple().Op('R');
        }

        public byte[] ToArray() => ms.ToArray();
    }
}
