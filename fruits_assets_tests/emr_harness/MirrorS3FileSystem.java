package fruitsharness;

import java.io.File;
import java.io.FileNotFoundException;
import java.io.IOException;
import java.net.URI;
import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.fs.FileStatus;
import org.apache.hadoop.fs.Path;
import org.apache.hadoop.fs.RawLocalFileSystem;

/**
 * Test harness only: plays EMRFS for s3://bucket/key by serving a local mirror folder
 * (fruits.mirror.root/bucket/key) that the harness syncs with the moto S3 server before and
 * after each step. hadoop-aws cannot be downloaded on the test machines.
 */
public class MirrorS3FileSystem extends RawLocalFileSystem {
  private URI uri;
  private String root;

  @Override
  public void initialize(URI name, Configuration conf) throws IOException {
    super.initialize(name, conf);
    uri = URI.create(name.getScheme() + "://" + name.getAuthority() + "/");
    root = conf.get("fruits.mirror.root");
    setConf(conf);
  }

  @Override public URI getUri() { return uri == null ? super.getUri() : uri; }
  @Override public String getScheme() { return uri == null ? super.getScheme() : uri.getScheme(); }
  // The parent constructor asks for these before initialize() has set uri.
  @Override public Path getWorkingDirectory() { return uri == null ? super.getWorkingDirectory() : new Path(uri); }
  @Override public Path getHomeDirectory() { return uri == null ? super.getHomeDirectory() : new Path(uri); }

  @Override
  public File pathToFile(Path path) {
    checkPath(path);
    Path p = path.isAbsolute() ? path : new Path(getWorkingDirectory(), path);
    return new File(root + "/" + uri.getAuthority() + p.toUri().getPath());
  }

  private Path back(Path local) {
    String prefix = new File(root + "/" + uri.getAuthority()).getAbsolutePath();
    String s = local.toUri().getPath();
    String rel = s.startsWith(prefix) ? s.substring(prefix.length()) : s;
    return new Path(uri.getScheme() + "://" + uri.getAuthority() + (rel.isEmpty() ? "/" : rel));
  }

  private FileStatus remap(FileStatus st) {
    st.setPath(back(st.getPath()));
    return st;
  }

  @Override
  public FileStatus getFileStatus(Path f) throws IOException {
    return remap(super.getFileStatus(f));
  }

  @Override
  public FileStatus getFileLinkStatus(Path f) throws IOException {
    return remap(super.getFileLinkStatus(f));
  }

  @Override
  public FileStatus[] listStatus(Path f) throws IOException {
    File local = pathToFile(f);
    if (!local.exists()) throw new FileNotFoundException("File " + f + " does not exist");
    if (local.isFile()) return new FileStatus[] {getFileStatus(f)};
    String[] names = local.list();
    if (names == null) throw new IOException("cannot list " + f);
    FileStatus[] out = new FileStatus[names.length];
    for (int i = 0; i < names.length; i++) out[i] = getFileStatus(new Path(f, names[i]));
    return out;
  }
}
