using System.Text;
using YamlDotNet.Core;
using YamlDotNet.Core.Tokens;
using YamlDotNet.RepresentationModel;

namespace Seg.Train.Config;

/// <summary>
/// YAML text to a node tree, bounded before the tree is built. YamlDotNet builds its tree recursively, so a flow
/// sequence nested 100 000 deep overflows the stack (which no handler can catch); its scanner slows quadratically
/// with flow depth; and aliases expand exponentially ("billion laughs"). So the text is first checked token by
/// token, which stops at the first offending token: at most <see cref="ConfigLoader.MaxBytes"/> bytes, lists and
/// mappings nested at most <see cref="ConfigLoader.MaxDepth"/> deep, no anchors or aliases (configs never need
/// them), and keys that are plain names of at most <see cref="ConfigLoader.MaxKeyLength"/> characters.
/// </summary>
internal static class YamlInput
{
    /// <summary>The first document's root node (null for an empty text).</summary>
    /// <exception cref="ConfigException">A limit is exceeded or the YAML is malformed; names <paramref name="source"/>,
    /// <paramref name="keyPath"/> and, <paramref name="withLines"/> (a file rather than a one-line value), the line.</exception>
    public static YamlNode? Parse(string text, string source, string keyPath, bool withLines = true)
    {
        var bytes = Encoding.UTF8.GetByteCount(text);
        if (bytes > ConfigLoader.MaxBytes)
            throw new ConfigException(source, keyPath, $"{bytes} bytes of YAML; configs are limited to {ConfigLoader.MaxBytes} bytes");
        try
        {
            CheckTokens(text, source, keyPath, withLines);
            var stream = new YamlStream();
            stream.Load(new StringReader(text));
            if (stream.Documents.Count == 0) return null;
            var root = stream.Documents[0].RootNode;
            CheckKeys(root, source, keyPath, withLines);
            return root;
        }
        catch (YamlException e)
        {
            throw new ConfigException(source, keyPath, $"{Line(e.Start.Line, withLines)}{e.Message}");
        }
    }

    static string Line(long line, bool withLines) => withLines ? $"line {line}: " : "";

    static void CheckTokens(string text, string source, string keyPath, bool withLines)
    {
        var scanner = new Scanner(new StringReader(text));
        var depth = 0;
        while (Next(scanner))
        {
            var token = scanner.Current!;
            switch (token)
            {
                // The scanner reports malformed text as Error tokens, and goes on producing them.
                case Error error:
                    throw Error(token, error.Value);
                case Anchor or AnchorAlias:
                    throw Error(token, "anchors and aliases (&name, *name) are not supported in config files; write the value out");
                case FlowSequenceStart or FlowMappingStart or BlockSequenceStart or BlockMappingStart:
                    if (++depth > ConfigLoader.MaxDepth)
                        throw Error(token, $"lists and mappings nest more than {ConfigLoader.MaxDepth} levels deep");
                    break;
                case FlowSequenceEnd or FlowMappingEnd or BlockEnd:
                    depth--;
                    break;
            }
        }

        ConfigException Error(Token token, string problem) => new(source, keyPath, $"{Line(token.Start.Line, withLines)}{problem}");

        // YamlDotNet's scanner throws InvalidOperationException on some malformed text (e.g. a stray byte in a
        // plain scalar of a flow mapping) instead of a YamlException.
        bool Next(Scanner s)
        {
            try { return s.MoveNext(); }
            catch (InvalidOperationException e)
            {
                throw new ConfigException(source, keyPath, $"{Line(s.CurrentPosition.Line, withLines)}malformed YAML ({e.Message})");
            }
        }
    }

    // Depth is bounded by the token check, so this recursion is shallow.
    static void CheckKeys(YamlNode node, string source, string keyPath, bool withLines)
    {
        switch (node)
        {
            case YamlMappingNode map:
                foreach (var (key, value) in map.Children)
                {
                    if (key is not YamlScalarNode scalar)
                        throw new ConfigException(source, keyPath, $"{Line(key.Start.Line, withLines)}a key must be a plain name, not a list or mapping");
                    if ((scalar.Value?.Length ?? 0) > ConfigLoader.MaxKeyLength)
                        throw new ConfigException(source, keyPath,
                            $"{Line(key.Start.Line, withLines)}a key of {scalar.Value!.Length} characters; keys are at most {ConfigLoader.MaxKeyLength}");
                    CheckKeys(value, source, keyPath, withLines);
                }
                break;
            case YamlSequenceNode list:
                foreach (var item in list.Children) CheckKeys(item, source, keyPath, withLines);
                break;
        }
    }
}
