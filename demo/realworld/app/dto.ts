export interface CreateUserDto {
  readonly username: string;
  readonly email: string;
  readonly password: string;
}

export interface UpdateUserDto {
  readonly email?: string;
  readonly bio?: string;
  readonly password?: string;
}

export interface CreateArticleDto {
  readonly title: string;
  readonly description: string;
  readonly body: string;
}

export interface UpdateArticleDto {
  readonly title?: string;
  readonly description?: string;
  readonly body?: string;
  /** The version the client read: a stale one is refused. */
  readonly version?: number;
}

export interface UserData {
  readonly id: number;
  readonly username: string;
  readonly email: string;
  readonly bio: string;
  readonly version: number;
}

export interface UserRO {
  readonly user: UserData;
}

export interface ArticleData {
  readonly slug: string;
  readonly title: string;
  readonly description: string;
  readonly body: string;
  readonly author: string | undefined;
  readonly version: number;
}

export interface ArticleRO {
  readonly article: ArticleData;
}
