using Seg.Train.Config;

namespace Seg.Tests.Train;

/// <summary><c>model.pretrained</c> as a scalar (path, imagenet, coco_voc) or a <c>{ url, sha256 }</c> mapping.</summary>
public class PretrainedConfigTests
{
    static ModelConfig Model(string model) => ConfigLoader.Parse($"model: {model}\n", "t.yaml").Model;

    [Fact]
    public void ScalarsAndTheUrlMappingParse()
    {
        Assert.Equal("imagenet", Model("{ name: unet_resnet34, pretrained: imagenet }").Pretrained);
        Assert.Equal("coco_voc", Model("{ name: fcn_resnet50, pretrained: coco_voc }").Pretrained);
        var sha = new string('a', 64);
        var m = Model($"{{ name: unet_resnet34, pretrained: {{ url: 'https://example.org/w-1234abcd.pth', sha256: {sha} }} }}");
        Assert.Equal("https://example.org/w-1234abcd.pth", m.Pretrained);
        Assert.Equal(sha, m.PretrainedSha256);
    }

    [Fact]
    public void BadMappingsNameTheKey()
    {
        var e = Assert.Throws<ConfigException>(() => Model("{ name: unet, pretrained: { sha256: abc } }"));
        Assert.Contains("url", e.Message);
        e = Assert.Throws<ConfigException>(() => Model("{ name: unet, pretrained: { url: 'https://x/y.pth', sha256: xyz } }"));
        Assert.Contains("sha256", e.Message);
    }
}
