import { Body, Controller, Delete, Get, Headers, Param, Post, Put } from '@nestjs/common';
// biome-ignore lint/style/useImportType: Nest injects by the class that design:paramtypes records
import { ArticleService } from './article.service.js';
import type { ArticleRO, CreateArticleDto, UpdateArticleDto } from './dto.js';

@Controller('articles')
export class ArticleController {
  constructor(private readonly articleService: ArticleService) {}

  @Get(':slug')
  async findOne(@Param('slug') slug: string): Promise<ArticleRO> {
    return this.articleService.findOne(slug);
  }

  @Post()
  async create(
    @Headers('x-user') username: string,
    @Body('article') articleData: CreateArticleDto,
  ): Promise<ArticleRO> {
    return this.articleService.create(username, articleData);
  }

  @Put(':slug')
  async update(@Param('slug') slug: string, @Body('article') articleData: UpdateArticleDto): Promise<ArticleRO> {
    return this.articleService.update(slug, articleData);
  }

  @Post(':slug/favorite')
  async favorite(@Param('slug') slug: string): Promise<ArticleRO> {
    return this.articleService.favorite(slug);
  }

  @Delete(':slug')
  async delete(@Param('slug') slug: string): Promise<void> {
    await this.articleService.delete(slug);
  }
}
