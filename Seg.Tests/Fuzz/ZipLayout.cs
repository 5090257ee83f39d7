using System.Buffers.Binary;
using System.IO.Compression;

namespace Seg.Tests.Fuzz;

/// <summary>Test-side zip helpers: where a zip's length fields are, and building archives (stored or deflated).</summary>
public static class ZipLayout
{
    /// <summary>The size, count and offset fields of every local header, central directory record and the end record.</summary>
    public static List<LengthField> Fields(byte[] zip)
    {
        var fields = new List<LengthField>();
        for (int i = 0; i + 4 <= zip.Length; i++)
        {
            uint sig = BinaryPrimitives.ReadUInt32LittleEndian(zip.AsSpan(i));
            if (sig == 0x04034b50 && i + 30 <= zip.Length)
            {
                fields.Add(new(i + 18, 4, false, "local.compressed"));
                fields.Add(new(i + 22, 4, false, "local.uncompressed"));
                fields.Add(new(i + 26, 2, false, "local.namelen"));
                fields.Add(new(i + 28, 2, false, "local.extralen"));
            }
            else if (sig == 0x02014b50 && i + 46 <= zip.Length)
            {
                fields.Add(new(i + 20, 4, false, "central.compressed"));
                fields.Add(new(i + 24, 4, false, "central.uncompressed"));
                fields.Add(new(i + 28, 2, false, "central.namelen"));
                fields.Add(new(i + 30, 2, false, "central.extralen"));
                fields.Add(new(i + 42, 4, false, "central.offset"));
            }
            else if (sig == 0x06054b50 && i + 22 <= zip.Length)
            {
                fields.Add(new(i + 8, 2, false, "eocd.entries_disk"));
                fields.Add(new(i + 10, 2, false, "eocd.entries"));
                fields.Add(new(i + 12, 4, false, "eocd.cdsize"));
                fields.Add(new(i + 16, 4, false, "eocd.cdoffset"));
                fields.Add(new(i + 20, 2, false, "eocd.commentlen"));
            }
        }
        return fields;
    }

    /// <summary>The entries of a zip, in order.</summary>
    public static List<(string Name, byte[] Data)> Entries(byte[] zip)
    {
        using var archive = new ZipArchive(new MemoryStream(zip), ZipArchiveMode.Read);
        return archive.Entries.Select(e =>
        {
            using var s = e.Open();
            using var ms = new MemoryStream();
            s.CopyTo(ms);
            return (e.FullName, ms.ToArray());
        }).ToList();
    }

    /// <summary>A zip with these entries and correct CRCs (stored unless <paramref name="deflate"/>).</summary>
    public static byte[] Build(IEnumerable<(string Name, byte[] Data)> entries, bool deflate = false) =>
        Build(entries.Select(e => (e.Name, e.Data, 0L)), deflate);

    /// <summary>As above, each entry followed by <c>Zeros</c> zero bytes, streamed (bombs without a buffer of
    /// their expanded size).</summary>
    public static byte[] Build(IEnumerable<(string Name, byte[] Data, long Zeros)> entries, bool deflate)
    {
        var ms = new MemoryStream();
        using (var archive = new ZipArchive(ms, ZipArchiveMode.Create, leaveOpen: true))
            foreach (var (name, data, zeros) in entries)
            {
                var entry = archive.CreateEntry(name, deflate ? CompressionLevel.Fastest : CompressionLevel.NoCompression);
                using var s = entry.Open();
                s.Write(data);
                FuzzFormats.WriteZeros(s, zeros);
            }
        return ms.ToArray();
    }
}
