// Convert the Salesforce DX source folder argv[2] to Metadata API format in
// argv[3] with Salesforce's own library (@salesforce/source-deploy-retrieve,
// the code behind `sf project convert source`), then print the components it
// recognised as JSON. A file it cannot parse makes it exit 1 with the reason.
const { ComponentSet, MetadataConverter } = require('@salesforce/source-deploy-retrieve');

(async () => {
  const [src, out] = process.argv.slice(2);
  const cs = ComponentSet.fromSource(src);
  const result = await new MetadataConverter().convert(cs, 'metadata', {
    type: 'directory', outputDirectory: out, packageName: 'mailsync', genUniqueDir: false,
  });
  const components = cs.toArray().map((c) => `${c.type.name}:${c.fullName}`).sort();
  console.log(JSON.stringify({ packagePath: result.packagePath, components }));
})().catch((e) => {
  console.error(String((e && e.message) || e));
  process.exit(1);
});
